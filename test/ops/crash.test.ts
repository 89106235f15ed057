// Nothing lost on a crash: the server is killed (-9) mid-burst and restarted on the same database and Redis.
// Every registration answered 201 logs in afterwards; every logout answered 204 stays revoked (access and refresh);
// a refresh chain interrupted mid-rotation leaves its session with at most one live refresh token, and the token the
// client last got a 200 for still works (inside the grace interval it yields the child the lost answer carried).
// The kill-during-one-logout case is test/modules/sessions/logout-crash.test.ts; this is the load version.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import { makeKeysDir, processBackends } from '../helpers/app.js';
import { freePort, type HttpResult, request, startServerProcess } from '../helpers/server-process.js';

const { servers, database, redisKeyPrefix } = await processBackends(t, 'opscrash');
const port = await freePort();
const env = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  DATABASE_URL: database.url,
  REDIS_URL: servers.redisUrl,
  REDIS_KEY_PREFIX: redisKeyPrefix,
  KEYS_DIR: await makeKeysDir(t),
  RATE_LIMIT_ENABLED: 'false',
  PRUNE_INTERVAL: '0',
  // Longer than a restart on a loaded machine: the retried in-flight token is inside the grace interval.
  REFRESH_REUSE_INTERVAL: '120',
};
const startServer = () => startServerProcess(t, env, { port });
const PASSWORD = 'correct horse battery staple';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const call = (method: string, urlPath: string, options: { body?: unknown; token?: string } = {}) =>
  request(port, method, urlPath, options.body, options.token ? { authorization: `Bearer ${options.token}` } : {});
const parse = (result: HttpResult) => JSON.parse(result.body) as Record<string, string>;

interface Chain {
  email: string;
  /** The refresh token of the last 200 (or of the login). */
  last: string;
  sessionId: string;
  rotations: number;
}

async function newChain(email: string): Promise<Chain> {
  const login = await call('POST', '/auth/login', { body: { email, password: PASSWORD } });
  if (login.statusCode !== 200) throw new Error(`login: ${login.statusCode} ${login.body}`);
  const { accessToken, refreshToken } = parse(login);
  const sid = JSON.parse(Buffer.from(accessToken?.split('.')[1] ?? '', 'base64url').toString()).sid as string;
  return { email, last: refreshToken ?? '', sessionId: sid, rotations: 0 };
}

/** Refreshes one chain in a loop until the server is gone; only answered 200s move `last`. */
async function spin(chain: Chain, stop: () => boolean): Promise<void> {
  while (!stop()) {
    const answer = await call('POST', '/auth/refresh', { body: { refreshToken: chain.last } }).catch(() => undefined);
    if (!answer) return;
    if (answer.statusCode !== 200) throw new Error(`refresh before the kill: ${answer.statusCode} ${answer.body}`);
    chain.last = parse(answer).refreshToken ?? '';
    chain.rotations++;
  }
}

async function liveRefreshTokens(sessionId: string): Promise<number> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ live: number }>(
      `SELECT count(*)::int AS live FROM refresh_tokens
        WHERE session_id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()`,
      [sessionId],
    );
    return rows[0]?.live ?? -1;
  } finally {
    await client.end();
  }
}

t.test('kill -9 under load: registrations, logouts and refresh chains survive as acknowledged', async (t) => {
  let server = await startServer();
  // Accounts and sessions for the logouts and the refresh chains, made before the burst.
  const base: string[] = [];
  for (let i = 0; i < 3; i++) {
    const email = `crash-base-${i}-${randomBytes(4).toString('hex')}@example.com`;
    t.equal((await call('POST', '/auth/register', { body: { email, password: PASSWORD } })).statusCode, 201);
    base.push(email);
  }
  const logins = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const answer = await call('POST', '/auth/login', { body: { email: base[i % base.length], password: PASSWORD } });
      return parse(answer) as { accessToken: string; refreshToken: string };
    }),
  );
  const chains = await Promise.all(Array.from({ length: 6 }, (_, i) => newChain(base[i % base.length] ?? '')));

  // The burst: registrations (argon2, the slow part), logouts and refresh loops, all at once.
  let killed = false;
  const emails = Array.from({ length: 24 }, (_, i) => `crash-${i}-${randomBytes(4).toString('hex')}@example.com`);
  const registrations = emails.map((email) =>
    call('POST', '/auth/register', { body: { email, password: PASSWORD } }).catch(() => undefined),
  );
  const logouts = logins.map(async (tokens, i) => {
    await sleep(i * 150);
    return call('POST', '/auth/logout', { token: tokens.accessToken }).catch(() => undefined);
  });
  const spinning = chains.map((chain) => spin(chain, () => killed));
  // Kill once some registrations answered and some are still in flight.
  let answered = 0;
  for (const registration of registrations) void registration.then((r) => r?.statusCode === 201 && answered++);
  const deadline = Date.now() + 20_000;
  while (answered < 6 && Date.now() < deadline) await sleep(20);
  await server.stop('SIGKILL');
  killed = true;
  const registered = await Promise.all(registrations);
  const loggedOut = await Promise.all(logouts);
  await Promise.all(spinning);

  server = await startServer();

  const acknowledged = emails.filter((_, i) => registered[i]?.statusCode === 201);
  t.ok(acknowledged.length > 0 && acknowledged.length < emails.length, `killed mid-burst (${acknowledged.length}/24)`);
  for (const result of registered) {
    if (result) t.equal(result.statusCode, 201, 'an answered registration is 201');
  }
  const unanswered = emails.filter((_, i) => registered[i] === undefined);
  let lostLogins = 0;
  for (const email of acknowledged) {
    const login = await call('POST', '/auth/login', { body: { email, password: PASSWORD } });
    if (login.statusCode !== 200) lostLogins++;
  }
  t.equal(lostLogins, 0, `every one of the ${acknowledged.length} acknowledged users logs in`);
  // An unanswered one is either complete or absent: a login is 200 or 401, never a half-made account.
  for (const email of unanswered) {
    const login = await call('POST', '/auth/login', { body: { email, password: PASSWORD } });
    t.ok([200, 401].includes(login.statusCode), `unanswered registration: login ${login.statusCode}`);
  }

  const acked = loggedOut.filter((result) => result?.statusCode === 204).length;
  t.comment(`logouts answered 204 before the kill: ${acked}/${logins.length}`);
  for (const [i, result] of loggedOut.entries()) {
    const tokens = logins[i];
    if (result?.statusCode !== 204 || !tokens) continue;
    const me = await call('GET', '/users/me', { token: tokens.accessToken });
    const renewed = await call('POST', '/auth/refresh', { body: { refreshToken: tokens.refreshToken } });
    t.equal(me.statusCode, 401, `logout ${i}: access token stays revoked`);
    t.equal(renewed.statusCode, 401, `logout ${i}: refresh token stays revoked`);
  }

  t.comment(`rotations before the kill: ${chains.map((chain) => chain.rotations).join(', ')}`);
  for (const [i, chain] of chains.entries()) {
    t.ok((await liveRefreshTokens(chain.sessionId)) <= 1, `chain ${i}: at most one live refresh token`);
    const retried = await call('POST', '/auth/refresh', { body: { refreshToken: chain.last } });
    t.equal(retried.statusCode, 200, `chain ${i}: the last acknowledged token still works`);
    if (retried.statusCode !== 200) continue;
    const child = parse(retried).refreshToken ?? '';
    t.equal(await liveRefreshTokens(chain.sessionId), 1, `chain ${i}: exactly one live token after the retry`);
    const next = await call('POST', '/auth/refresh', { body: { refreshToken: child } });
    t.equal(next.statusCode, 200, `chain ${i}: and the chain goes on`);
  }
  t.ok(server.alive(), 'the restarted server is running');
  await server.stop('SIGKILL');
});
