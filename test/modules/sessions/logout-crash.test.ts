// A logout is all or nothing: the real server is killed (-9) at varying small delays after a logout was sent, and
// restarted on the same database and Redis; the session is then either fully alive (its refresh token and its
// access token work) or fully dead (both 401), never the bearer dead and the refresh token alive.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { Redis } from 'ioredis';
import t from 'tap';
import { makeKeysDir } from '../../helpers/app.js';
import { createTestDatabase } from '../../helpers/database.js';
import { freePort } from '../../helpers/redis-server.js';
import { testServers } from '../../helpers/servers.js';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const servers = await testServers();
const database = await createTestDatabase(servers.databaseUrl);
t.teardown(() => database.drop());
const redisKeyPrefix = `test:crash:${randomBytes(6).toString('hex')}:`;
t.teardown(async () => {
  const redis = new Redis(servers.redisUrl);
  const keys = await redis.keys(`${redisKeyPrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});
const keysDir = await makeKeysDir(t);
const port = await freePort();

let current: ChildProcess | undefined;
t.teardown(async () => {
  if (current && current.exitCode === null && current.signalCode === null && current.pid !== undefined) {
    const exited = new Promise((resolve) => current?.once('exit', resolve));
    process.kill(current.pid, 'SIGKILL');
    await exited;
  }
});

async function startServer(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: database.url,
      REDIS_URL: servers.redisUrl,
      REDIS_KEY_PREFIX: redisKeyPrefix,
      KEYS_DIR: keysDir,
      RATE_LIMIT_ENABLED: 'false',
      PRUNE_INTERVAL: '0',
      // Cheap hashing: the loop logs in many times.
      ARGON2_TIME_COST: '2',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  current = child;
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  const deadline = Date.now() + 30_000;
  while (!/Server listening/.test(output)) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`server did not listen within 30 s:\n${output}`);
    await sleep(50);
  }
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid, 'SIGKILL');
  await exited;
}

function request(
  method: string,
  urlPath: string,
  options: { body?: unknown; token?: string } = {},
): Promise<{ statusCode: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string | number> = {};
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent: false, headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk;
      });
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const email = `crash-${randomBytes(5).toString('hex')}@example.com`;
const password = 'correct horse battery staple';
const DELAYS_MS = [0, 1, 2, 4, 6, 9, 13, 20];

t.test('kill -9 during logout, then restart: the session is fully alive or fully dead', async (t) => {
  let server = await startServer();
  const registered = await request('POST', '/auth/register', { body: { email, password } });
  t.equal(registered.statusCode, 201, 'registered');
  const outcomes: string[] = [];
  for (const delay of DELAYS_MS) {
    const login = await request('POST', '/auth/login', { body: { email, password } });
    t.equal(login.statusCode, 200, `delay ${delay}: logged in`);
    const { accessToken, refreshToken } = JSON.parse(login.body) as { accessToken: string; refreshToken: string };

    const logout = request('POST', '/auth/logout', { token: accessToken }).catch(() => undefined);
    await sleep(delay);
    await kill9(server);
    const logoutResult = await logout;
    server = await startServer();

    // Checked twice, a moment apart: the answer must not change while the restarted server settles.
    const access = (await request('GET', '/users/me', { token: accessToken })).statusCode;
    const again = (await request('GET', '/users/me', { token: accessToken })).statusCode;
    const renewed = await request('POST', '/auth/refresh', { body: { refreshToken } });
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
      t.equal((await request('POST', '/auth/logout', { token: next })).statusCode, 204);
    }
  }
  t.comment(outcomes.join('\n'));
  await kill9(server);
});
