// A relying party built on panva's openid-client, driven by tests/interop/test_openid_client.py.
//
// It speaks JSON lines: each line on stdin is a command, each answer one line on stdout. The test plays the
// user (the login and consent forms); everything a relying party does — discovery, the authorization URL
// with PKCE, state and nonce, the callback's checks, ID-token validation (max_age included), refresh,
// introspection, userinfo, revocation — is openid-client's own code with its defaults.
import * as client from 'openid-client';
import * as readline from 'node:readline';

let config;
const pending = new Map(); // state -> {verifier, nonce, maxAge}

function problem(error) {
  // openid-client's errors: ResponseBodyError carries the server's error JSON, others a code.
  return {
    ok: false,
    name: error?.name,
    code: error?.code,
    error: error?.error,
    error_description: error?.error_description,
    status: error?.status,
    message: String(error?.message ?? error),
  };
}

function tokens(response) {
  return {
    access_token: response.access_token,
    refresh_token: response.refresh_token,
    id_token: response.id_token,
    expires_in: response.expiresIn(),
    scope: response.scope,
    claims: response.claims() ?? null,
  };
}

const commands = {
  async discover({ issuer, client_id, client_secret }) {
    // Only a secret: openid-client's default client authentication is client_secret_post.
    config = await client.discovery(new URL(issuer), client_id, client_secret, undefined, {
      execute: [client.allowInsecureRequests], // a plain-http loopback issuer
    });
    const metadata = config.serverMetadata();
    return { ok: true, issuer: metadata.issuer, id_token_signing_alg_values_supported: metadata.id_token_signing_alg_values_supported };
  },

  async authorization_url({ redirect_uri, scope, max_age }) {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const parameters = {
      redirect_uri,
      scope,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    };
    if (max_age !== undefined) parameters.max_age = String(max_age);
    pending.set(state, { verifier, nonce, maxAge: max_age });
    return { ok: true, url: client.buildAuthorizationUrl(config, parameters).href };
  },

  async callback({ url }) {
    const state = new URL(url).searchParams.get('state');
    const checks = pending.get(state) ?? {};
    pending.delete(state);
    const response = await client.authorizationCodeGrant(config, new URL(url), {
      pkceCodeVerifier: checks.verifier,
      expectedState: state,
      expectedNonce: checks.nonce,
      maxAge: checks.maxAge,
      idTokenExpected: true,
    });
    return { ok: true, ...tokens(response) };
  },

  async refresh({ refresh_token }) {
    return { ok: true, ...tokens(await client.refreshTokenGrant(config, refresh_token)) };
  },

  async introspect({ token }) {
    return { ok: true, introspection: await client.tokenIntrospection(config, token) };
  },

  async userinfo({ access_token, subject }) {
    return { ok: true, userinfo: await client.fetchUserInfo(config, access_token, subject) };
  },

  async revoke({ token }) {
    await client.tokenRevocation(config, token);
    return { ok: true };
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  let answer;
  try {
    const command = JSON.parse(line);
    answer = await commands[command.command](command);
  } catch (error) {
    answer = problem(error);
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
