// panva's oidc-provider as the upstream OpenID provider of Authyard's upstream sign-in tests.
//
// Environment: PORT; CLIENTS_FILE, a JSON list of clients (client_id, client_secret, redirect_uris,
// token_endpoint_auth_method); USERS_FILE, a JSON object of accounts by id ({sub, preferred_username,
// email, email_verified, name, groups}), read again at every lookup so that a test can change a person
// between two sign-ins. Sign-in is oidc-provider's devInteractions (any password; the login is the
// account id), then its consent page. Prints "listening" once it accepts connections.
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import process from 'node:process';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const users = () => JSON.parse(readFileSync(process.env.USERS_FILE, 'utf8'));
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: randomBytes(8).toString('hex') };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: JSON.parse(readFileSync(process.env.CLIENTS_FILE, 'utf8')).map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'ES256',
    ...client,
  })),
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The default: the scope's claims are in userinfo, not in the ID token (OIDC Core §5.4).
  conformIdTokenClaims: true,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const account = users()[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { ...account, sub: id }; } };
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

const server = provider.listen(port, '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
