// Several instances, one truth: three server processes on one Postgres database and one Redis prefix. A logout, a role change and a rate-limit counter made through
// one instance hold on the others at their next request: nothing the service decides lives in one process.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { createAdmin } from '../helpers/admin.js';
import { buildTestApp, makeKeysDir, processBackends } from '../helpers/app.js';
import { type HttpResult, request, type ServerProcess, startServerProcess } from '../helpers/server-process.js';

const { servers, database, redisKeyPrefix } = await processBackends(t, 'instances');
const keysDir = await makeKeysDir(t);
const LOGIN_FAILURES = 4;
// What every instance of one deployment shares: issuer, keys, secrets, stores.
const shared = {
  ISSUER: 'http://auth.test',
  SESSION_SECRET: randomBytes(32).toString('hex'),
  DATA_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
  KEYS_DIR: keysDir,
  DATABASE_URL: database.url,
  REDIS_URL: servers.redisUrl,
  REDIS_KEY_PREFIX: redisKeyPrefix,
};
const env = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  PRUNE_INTERVAL: '0',
  ...shared,
  // Limits on, high except the one under test (failed logins per email and IP).
  RATE_LIMIT_ENABLED: 'true',
  RATE_LIMIT_LOGIN_PER_IP: '1000',
  RATE_LIMIT_REGISTER_PER_IP: '1000',
  RATE_LIMIT_REFRESH_PER_IP: '1000',
  RATE_LIMIT_LOGIN_FAILURES: String(LOGIN_FAILURES),
};
// One at a time: under tap, cold boots started together stalled past the helper's 40 s on a loaded 2-core machine.
const instances: ServerProcess[] = [];
for (let i = 0; i < 3; i++) {
  const t0 = Date.now();
  instances.push(await startServerProcess(t, env));
  t.comment(`instance ${i + 1} up in ${Date.now() - t0} ms`);
}
const at = (i: number) => instances[i % instances.length] as ServerProcess;
const PASSWORD = 'correct horse battery staple';

const call = (i: number, method: string, urlPath: string, options: { body?: unknown; token?: string } = {}) =>
  request(at(i).port, method, urlPath, options.body, options.token ? { authorization: `Bearer ${options.token}` } : {});
const json = (result: HttpResult) => JSON.parse(result.body) as Record<string, unknown>;
const code = (result: HttpResult) => json(result).code;

async function account(): Promise<{ id: string; email: string }> {
  const email = `inst-${randomBytes(5).toString('hex')}@example.com`;
  const created = await call(0, 'POST', '/auth/register', { body: { email, password: PASSWORD } });
  if (created.statusCode !== 201) throw new Error(`register: ${created.statusCode} ${created.body}`);
  return { id: (json(created).user as { id: string }).id, email };
}

async function login(i: number, email: string): Promise<{ accessToken: string; refreshToken: string }> {
  const answer = await call(i, 'POST', '/auth/login', { body: { email, password: PASSWORD } });
  if (answer.statusCode !== 200) throw new Error(`login: ${answer.statusCode} ${answer.body}`);
  return json(answer) as { accessToken: string; refreshToken: string };
}

t.test('a logout through one instance is seen by the others at once', async (t) => {
  const { email } = await account();
  const tokens = await login(0, email);
  for (const i of [1, 2]) t.equal((await call(i, 'GET', '/users/me', { token: tokens.accessToken })).statusCode, 200);
  t.equal((await call(0, 'POST', '/auth/logout', { token: tokens.accessToken })).statusCode, 204, 'logout on #1');
  for (const i of [1, 2]) {
    const me = await call(i, 'GET', '/users/me', { token: tokens.accessToken });
    t.equal(me.statusCode, 401, `#${i + 1}: access token rejected`);
    t.equal(code(me), 'TOKEN_REVOKED', `#${i + 1}: as revoked`);
  }
  const refreshed = await call(2, 'POST', '/auth/refresh', { body: { refreshToken: tokens.refreshToken } });
  t.equal(refreshed.statusCode, 401, '#3: refresh token rejected');
});

t.test('a role change through one instance is seen by the others at once', async (t) => {
  // The admin is made as `npm run create-admin` makes one: an in-process app on the same database and prefix.
  const { app } = await buildTestApp(t, { databaseUrl: database.url, redisKeyPrefix, keysDir, env: shared });
  const admin = await createAdmin(app);
  const adminTokens = await login(0, admin.email);
  const user = await account();
  const before = await login(1, user.email);
  const forbidden = await call(2, 'GET', '/users', { token: before.accessToken });
  t.equal(forbidden.statusCode, 403, 'a user may not list users');

  const changed = await call(0, 'PUT', `/users/${user.id}/roles`, {
    body: { roles: ['user', 'admin'] },
    token: adminTokens.accessToken,
  });
  t.equal(changed.statusCode, 200, 'roles changed on #1');
  for (const i of [1, 2]) {
    const stale = await call(i, 'GET', '/users/me', { token: before.accessToken });
    t.equal(stale.statusCode, 401, `#${i + 1}: the token with the old roles is rejected`);
    t.equal(code(stale), 'TOKEN_REVOKED', `#${i + 1}: as revoked`);
  }
  const after = await login(2, user.email);
  t.equal((await call(1, 'GET', '/users', { token: after.accessToken })).statusCode, 200, 'new token: admin on #2');
});

t.test('a rate-limit counter is shared: failures spread over the instances add up', async (t) => {
  const { email } = await account();
  for (let i = 0; i < LOGIN_FAILURES; i++) {
    const failed = await call(i, 'POST', '/auth/login', { body: { email, password: 'not the password at all' } });
    t.equal(failed.statusCode, 401, `failure ${i + 1} on #${(i % 3) + 1}`);
  }
  for (const i of [0, 1, 2]) {
    const limited = await call(i, 'POST', '/auth/login', { body: { email, password: PASSWORD } });
    t.equal(limited.statusCode, 429, `#${i + 1}: limited, even the right password`);
    t.equal(code(limited), 'RATE_LIMITED');
  }
});

t.test('every instance is still running, without errors logged', async (t) => {
  for (const [i, instance] of instances.entries()) {
    t.ok(instance.alive(), `#${i + 1} alive`);
    t.notMatch(instance.output(), /"level":(50|60)/, `#${i + 1}: no error or fatal line`);
  }
});
