// oidc-provider (panva/node-oidc-provider) as a peer for bench/peers: client_credentials, introspection,
// JWKS and discovery, one confidential client, tokens in PostgreSQL through a minimal adapter (the library
// ships only an in-memory one, which its documentation rules out for production and which node:cluster
// workers could not share). The primary creates the table, makes the signing key and the cookie secret,
// and forks WORKERS processes that share the listening socket (node:cluster), as uvicorn --workers does.
//
// Environment: PORT, WORKERS, DATABASE_URL, DB_POOL (per worker), CLIENT_ID, CLIENT_SECRET, SCOPE.
import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import process from 'node:process';

import pg from 'pg';

const port = Number(process.env.PORT);
const workers = Number(process.env.WORKERS || 1);

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.DB_POOL || 20),
});

const SCHEMA = `
CREATE TABLE IF NOT EXISTS oidc_payloads (
  id text NOT NULL,
  type text NOT NULL,
  payload jsonb NOT NULL,
  grant_id text,
  user_code text,
  uid text,
  expires_at timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (id, type)
);
CREATE INDEX IF NOT EXISTS oidc_payloads_grant_id ON oidc_payloads (grant_id);
CREATE INDEX IF NOT EXISTS oidc_payloads_user_code ON oidc_payloads (user_code);
CREATE INDEX IF NOT EXISTS oidc_payloads_uid ON oidc_payloads (uid);
`;

// The adapter interface of oidc-provider (see its example adapters), one row per model instance.
class PostgresAdapter {
  constructor(name) {
    this.name = name;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null;
    await pool.query(
      `INSERT INTO oidc_payloads (id, type, payload, grant_id, user_code, uid, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (id, type) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
         user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
      [id, this.name, payload, payload.grantId, payload.userCode, payload.uid, expiresAt],
    );
  }

  async #findBy(column, value) {
    const { rows } = await pool.query(
      `SELECT payload, consumed_at FROM oidc_payloads
       WHERE ${column} = $1 AND type = $2 AND (expires_at IS NULL OR expires_at > now())`,
      [value, this.name],
    );
    if (rows.length === 0) return undefined;
    const { payload, consumed_at: consumedAt } = rows[0];
    return consumedAt ? { ...payload, consumed: Math.floor(consumedAt.getTime() / 1000) } : payload;
  }

  find(id) {
    return this.#findBy('id', id);
  }

  findByUserCode(userCode) {
    return this.#findBy('user_code', userCode);
  }

  findByUid(uid) {
    return this.#findBy('uid', uid);
  }

  async consume(id) {
    await pool.query('UPDATE oidc_payloads SET consumed_at = now() WHERE id = $1 AND type = $2', [id, this.name]);
  }

  async destroy(id) {
    await pool.query('DELETE FROM oidc_payloads WHERE id = $1 AND type = $2', [id, this.name]);
  }

  async revokeByGrantId(grantId) {
    await pool.query('DELETE FROM oidc_payloads WHERE grant_id = $1', [grantId]);
  }
}

async function primary() {
  await pool.query(SCHEMA);
  await pool.end();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: randomBytes(8).toString('hex') };
  const env = { BENCH_JWK: JSON.stringify(jwk), BENCH_COOKIE_KEY: randomBytes(32).toString('hex') };
  let stopping = false;
  for (let index = 0; index < workers; index += 1) cluster.fork(env);
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} exited (${signal || code}): stopping`);
      stopping = true;
      process.exit(1);
    }
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
  });
  const stop = () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function worker() {
  const { default: Provider } = await import('oidc-provider');
  const scope = process.env.SCOPE;
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    adapter: PostgresAdapter,
    clients: [
      {
        client_id: process.env.CLIENT_ID,
        client_secret: process.env.CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope,
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    scopes: [scope],
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    jwks: { keys: [JSON.parse(process.env.BENCH_JWK)] },
    cookies: { keys: [process.env.BENCH_COOKIE_KEY] },
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
    },
    routes: { introspection: '/introspect', jwks: '/.well-known/jwks.json' },
    ttl: { ClientCredentials: 3600 },
  });
  const server = provider.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => {
    server.close(() => pool.end().finally(() => process.exit(0)));
    setTimeout(() => process.exit(0), 5000).unref();
  });
}

if (cluster.isPrimary) {
  await primary();
} else {
  await worker();
}
