// A logout is all or nothing: the real server is killed (-9) at varying small delays after a logout was sent, and
// restarted on the same database and Redis; the session is then either fully alive (its refresh token and its
// access token work) or fully dead (both 401), never the bearer dead and the refresh token alive.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { makeKeysDir, processBackends } from '../../helpers/app.js';
import { freePort, request, startServerProcess } from '../../helpers/server-process.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const { servers, database, redisKeyPrefix } = await processBackends(t, 'crash');
const keysDir = await makeKeysDir(t);
const port = await freePort();

const env = {
  NODE_ENV: 'test',
  DATABASE_URL: database.url,
  REDIS_URL: servers.redisUrl,
  REDIS_KEY_PREFIX: redisKeyPrefix,
  KEYS_DIR: keysDir,
  RATE_LIMIT_ENABLED: 'false',
  PRUNE_INTERVAL: '0',
};
const startServer = () => startServerProcess(t, env, { port });
const call = (method: string, urlPath: string, options: { body?: unknown; token?: string } = {}) =>
  request(port, method, urlPath, options.body, options.token ? { authorization: `Bearer ${options.token}` } : {});

const email = `crash-${randomBytes(5).toString('hex')}@example.com`;
const password = 'correct horse battery staple';
// Spread over a logout's own duration (a few ms): before, during and after its commit and Redis write.
const DELAYS_MS = [0, 2, 5, 10, 20];

t.test('kill -9 during logout, then restart: the session is fully alive or fully dead', async (t) => {
  let server = await startServer();
  const registered = await call('POST', '/auth/register', { body: { email, password } });
  t.equal(registered.statusCode, 201, 'registered');
  const outcomes: string[] = [];
  for (const delay of DELAYS_MS) {
    const login = await call('POST', '/auth/login', { body: { email, password } });
    t.equal(login.statusCode, 200, `delay ${delay}: logged in`);
    const { accessToken, refreshToken } = JSON.parse(login.body) as { accessToken: string; refreshToken: string };

    const logout = call('POST', '/auth/logout', { token: accessToken }).catch(() => undefined);
    await sleep(delay);
    await server.stop('SIGKILL');
    const logoutResult = await logout;
    server = await startServer();

    // Checked twice, a moment apart: the answer must not change while the restarted server settles.
    const access = (await call('GET', '/users/me', { token: accessToken })).statusCode;
    const again = (await call('GET', '/users/me', { token: accessToken })).statusCode;
    const renewed = await call('POST', '/auth/refresh', { body: { refreshToken } });
    const refreshed = renewed.statusCode;
    const state = `delay ${delay} ms (logout answered ${logoutResult?.statusCode ?? 'nothing'}): access ${access}/${again}, refresh ${refreshed}`;
    outcomes.push(state);
    const alive = access === 200 && again === 200 && refreshed === 200;
    const dead = access === 401 && again === 401 && refreshed === 401;
    t.ok(alive || dead, `${state}: all or nothing`);
    if (logoutResult?.statusCode === 204) t.ok(dead, `delay ${delay}: an acknowledged logout is complete`);
    if (alive) {
      // Clean up: end the surviving session normally.
      const { accessToken: next } = JSON.parse(renewed.body) as { accessToken: string };
      t.equal((await call('POST', '/auth/logout', { token: next })).statusCode, 204);
    }
  }
  t.comment(outcomes.join('\n'));
  await server.stop('SIGKILL');
});
