// Rate limits on real Redis (contract: Rate limits): per-IP budgets for login, register and refresh, the failed-login
// throttle per (email, IP) and per email across IPs, 429s that do not reveal whether an account exists, rate_limited
// events, counters under the app's Redis prefix, RATE_LIMIT_ENABLED=false, and failing closed when Redis is down.
import { and, eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import type { App } from '../../src/app.js';
import { securityEvents, users } from '../../src/db/schema.js';
import { buildTestApp } from '../helpers/app.js';
import { startProxy } from '../helpers/proxy.js';
import { testServers } from '../helpers/servers.js';
import {
  type Account,
  assertError,
  eventsOf,
  type Response,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../helpers/session-flow.js';

const LIMITS = {
  RATE_LIMIT_ENABLED: 'true',
  RATE_LIMIT_LOGIN_PER_IP: '3',
  RATE_LIMIT_LOGIN_FAILURES: '2',
  RATE_LIMIT_ACCOUNT_FAILURES: '4',
  RATE_LIMIT_REGISTER_PER_IP: '2',
  RATE_LIMIT_REFRESH_PER_IP: '2',
};
const WRONG = 'definitely not the password';

const { app, redis, redisKey } = await buildTestApp(t, { env: LIMITS });

// Each setup registration comes from its own address, so it never spends a budget a test is measuring.
let setupHost = 0;
async function registerFrom(target: App, remoteAddress?: string, email = uniqueEmail('rl')): Promise<Account> {
  const response = await target.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email, password: STRONG_PASSWORD },
    remoteAddress: remoteAddress ?? `10.250.${Math.floor(++setupHost / 250)}.${setupHost % 250}`,
  });
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.statusCode} ${response.body}`);
  return { id: response.json().user.id, email, password: STRONG_PASSWORD };
}

function loginFrom(target: App, remoteAddress: string, email: string, password: string): Promise<Response> {
  return target.inject({ method: 'POST', url: '/auth/login', payload: { email, password }, remoteAddress });
}

function refreshFrom(target: App, remoteAddress: string, refreshToken: string): Promise<Response> {
  return target.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken }, remoteAddress });
}

/** 429 RATE_LIMITED in the contract's shape, with a Retry-After of whole seconds within `maxSeconds`. */
function assertLimited(t: Test, response: Response, label: string, window: { min?: number; max: number }) {
  assertError(t, response, 429, 'RATE_LIMITED', label);
  t.equal(response.json().error, 'Too Many Requests', `${label}: error text`);
  const retryAfter = response.headers['retry-after'];
  t.match(String(retryAfter), /^\d+$/, `${label}: Retry-After is whole seconds`);
  const seconds = Number(retryAfter);
  t.ok(
    seconds >= (window.min ?? 1) && seconds <= window.max,
    `${label}: Retry-After ${seconds} within ${window.min ?? 1}..${window.max}`,
  );
}

const MINUTE = { max: 60 };
// The failure window is 15 minutes: a Retry-After beyond a minute tells it apart from the per-IP budget.
const FAILURE_WINDOW = { min: 61, max: 900 };

async function rateLimitedEvents(userId: string) {
  return eventsOf(app, userId, 'rate_limited');
}

/** The per-IP handler records its event without holding up the 429: wait briefly for it. */
async function eventually<T>(probe: () => Promise<T[]>, wanted: number): Promise<T[]> {
  const deadline = Date.now() + 3_000;
  let rows = await probe();
  while (rows.length < wanted && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    rows = await probe();
  }
  return rows;
}

t.test('login: a per-IP budget, then 429 RATE_LIMITED with Retry-After; other addresses unaffected', async (t) => {
  const account = await registerFrom(app);
  const ip = '10.3.0.1';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const response = await loginFrom(app, ip, account.email, account.password);
    t.equal(response.statusCode, 200, `login ${attempt} of 3: 200`);
    t.equal(response.headers['x-ratelimit-limit'], '3', `login ${attempt}: x-ratelimit-limit`);
  }
  const fourth = await loginFrom(app, ip, account.email, account.password);
  assertLimited(t, fourth, 'the fourth login from the address', MINUTE);
  t.equal(fourth.headers['x-ratelimit-remaining'], '0', 'x-ratelimit-remaining 0');
  t.notOk(fourth.json().accessToken, 'no tokens');
  assertLimited(t, await loginFrom(app, ip, uniqueEmail('anyone'), WRONG), 'any email from that address', MINUTE);
  // TRUST_PROXY is off: a client cannot buy a fresh budget by naming another address.
  const spoofed = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: account.password },
    remoteAddress: ip,
    headers: { 'x-forwarded-for': '10.3.0.99', 'x-real-ip': '10.3.0.98' },
  });
  assertLimited(t, spoofed, 'with X-Forwarded-For naming another address', MINUTE);
  const elsewhere = await loginFrom(app, '10.3.0.2', account.email, account.password);
  t.equal(elsewhere.statusCode, 200, 'the same account from another address: 200');

  // Two refusals named the account (the second named another email): one event per window and limit.
  const events = await eventually(() => rateLimitedEvents(account.id), 1);
  t.equal(events.length, 1, 'one rate_limited event in the targeted account');
  t.ok(
    events.every((event) => event.ip === ip),
    'with the limited address (not the forwarded one)',
  );
  t.ok(
    events.every((event) => (event.details as { limit?: string })?.limit === 'login_per_ip'),
    'naming the per-IP login limit',
  );
});

t.test('register and refresh have their own per-IP budgets', async (t) => {
  const ip = '10.4.0.1';
  const first = await registerFrom(app, ip);
  await registerFrom(app, ip);
  const email = uniqueEmail('third');
  const third = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email, password: STRONG_PASSWORD },
    remoteAddress: ip,
  });
  assertLimited(t, third, 'the third registration from the address', MINUTE);
  const stored = await app.db.select().from(users).where(eq(users.email, email));
  t.equal(stored.length, 0, 'the refused registration created nothing');
  t.ok(await registerFrom(app, '10.4.0.2'), 'another address may still register');

  // The login budget of the same address is untouched by registrations.
  const session = await loginFrom(app, ip, first.email, first.password);
  t.equal(session.statusCode, 200, 'login from the address whose register budget is spent: 200');

  let refreshToken = session.json().refreshToken as string;
  for (let attempt = 1; attempt <= 2; attempt++) {
    const response = await refreshFrom(app, ip, refreshToken);
    t.equal(response.statusCode, 200, `refresh ${attempt} of 2: 200`);
    refreshToken = response.json().refreshToken;
  }
  assertLimited(t, await refreshFrom(app, ip, refreshToken), 'the third refresh from the address', MINUTE);
  const elsewhere = await refreshFrom(app, '10.4.0.3', refreshToken);
  t.equal(elsewhere.statusCode, 200, 'the same refresh token from another address: 200 (it was not spent by the 429)');
  const login = await loginFrom(app, ip, first.email, first.password);
  t.equal(login.statusCode, 200, 'and login from the address still has budget left');
});

t.test('failures per (email, IP): then even the right password gets 429 there; other IPs log in', async (t) => {
  const account = await registerFrom(app);
  const ip = '10.5.0.1';
  for (let attempt = 1; attempt <= 2; attempt++) {
    assertError(t, await loginFrom(app, ip, account.email, WRONG), 401, 'INVALID_CREDENTIALS', `failure ${attempt}`);
  }
  const right = await loginFrom(app, ip, account.email, account.password);
  assertLimited(t, right, 'the right password after 2 failures', FAILURE_WINDOW);
  assertLimited(t, await loginFrom(app, ip, account.email, WRONG), 'and the per-IP budget after it', MINUTE);

  const other = await loginFrom(app, '10.5.0.2', account.email, account.password);
  t.equal(other.statusCode, 200, 'the same account from another address: 200');

  // Requests answered 429 do not count: the account has 2 failures, not 4, so one more still leaves it open.
  assertError(t, await loginFrom(app, '10.5.0.3', account.email, WRONG), 401, 'INVALID_CREDENTIALS', 'failure 3');
  const fourth = await loginFrom(app, '10.5.0.4', account.email, account.password);
  t.equal(fourth.statusCode, 200, 'the 429s were not counted as failures');

  const events = await eventually(() => rateLimitedEvents(account.id), 1);
  t.ok(
    events.some((event) => event.ip === ip && (event.details as { limit?: string })?.limit === 'login_failures'),
    'a rate_limited event for the throttled address',
  );
});

t.test('failures per email across IPs block every address', async (t) => {
  const account = await registerFrom(app);
  for (let host = 1; host <= 4; host++) {
    assertError(
      t,
      await loginFrom(app, `10.6.0.${host}`, account.email, WRONG),
      401,
      'INVALID_CREDENTIALS',
      `failure from address ${host}`,
    );
  }
  assertLimited(
    t,
    await loginFrom(app, '10.6.0.5', account.email, account.password),
    'the right password from a fresh address',
    FAILURE_WINDOW,
  );
  assertLimited(
    t,
    await loginFrom(app, '10.6.0.1', account.email, account.password),
    'and from one that failed once',
    FAILURE_WINDOW,
  );
  const unrelated = await registerFrom(app);
  t.equal(
    (await loginFrom(app, '10.6.0.5', unrelated.email, unrelated.password)).statusCode,
    200,
    'another account from the same address is unaffected',
  );
  const events = await eventually(() => rateLimitedEvents(account.id), 1);
  t.equal(events.length, 1, 'one rate_limited event for the two refusals (once per window and limit)');
  t.ok(
    events.every((event) => (event.details as { limit?: string })?.limit === 'login_failures'),
    'naming the failure limit',
  );
  t.same(
    events.map((event) => event.ip),
    ['10.6.0.5'],
    'with the first refused address',
  );
});

t.test('an unregistered email is throttled the same way: the 429 does not reveal existence', async (t) => {
  const account = await registerFrom(app);
  const ghost = uniqueEmail('ghost');
  const runs: Response[][] = [];
  for (const [ip, email] of [
    ['10.7.0.1', account.email],
    ['10.7.0.2', ghost],
  ] as const) {
    const responses: Response[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) responses.push(await loginFrom(app, ip, email, WRONG));
    runs.push(responses);
  }
  const [registered, unknown] = runs as [Response[], Response[]];
  const volatile = new Set(['date', 'x-request-id', 'retry-after', 'x-ratelimit-reset', 'content-length']);
  const headers = (response: Response) =>
    Object.fromEntries(Object.entries(response.headers).filter(([name]) => !volatile.has(name)));
  for (let attempt = 0; attempt < 3; attempt++) {
    const [a, b] = [registered[attempt] as Response, unknown[attempt] as Response];
    t.equal(a.statusCode, b.statusCode, `attempt ${attempt + 1}: same status (${a.statusCode})`);
    t.same(
      Object.keys(a.headers).sort(),
      Object.keys(b.headers).sort(),
      `attempt ${attempt + 1}: the same header names`,
    );
    t.same(headers(a), headers(b), `attempt ${attempt + 1}: the same header values (except time-dependent ones)`);
  }
  assertLimited(t, registered[2] as Response, 'registered, third attempt', FAILURE_WINDOW);
  assertLimited(t, unknown[2] as Response, 'unregistered, third attempt', FAILURE_WINDOW);
  const withoutSeconds = (response: Response) => ({
    ...response.json(),
    message: String(response.json().message).replace(/\d+/g, 'N'),
  });
  t.same(withoutSeconds(registered[2] as Response), withoutSeconds(unknown[2] as Response), 'identical 429 bodies');
  t.same(
    (registered[0] as Response).json(),
    (unknown[0] as Response).json(),
    'and identical 401 bodies before the limit',
  );
  const orphanEvents = await app.db
    .select()
    .from(securityEvents)
    .where(and(eq(securityEvents.type, 'rate_limited'), eq(securityEvents.ip, '10.7.0.2')));
  t.equal(orphanEvents.length, 0, 'no rate_limited row for a non-existent account');
});

t.test("counters live in Redis under the app's prefix", async (t) => {
  const account = await registerFrom(app);
  const ip = '10.8.0.1';
  await loginFrom(app, ip, account.email, WRONG);
  const keys = await redis.keys(redisKey('count:*'));
  t.ok(keys.length > 0, 'count:* keys exist under the prefix');
  const withIp = keys.filter((key) => key.includes(ip));
  t.ok(withIp.length >= 2, `the address has its counters (${withIp.join(', ')})`);
  // The failure counters; the registration's verification mail has its own (hourly) budget, `count:mail:*`.
  const perAccount = keys.filter((key) => key.includes(account.email) && !key.includes('count:mail:'));
  t.ok(perAccount.length >= 2, 'the account has its failure counters (per address and overall)');
  t.ok(
    keys.some((key) => key.includes(account.email) && !key.includes(ip)),
    'one of them across every address',
  );
  for (const key of [...withIp, ...perAccount]) {
    const ttl = await redis.pttl(key);
    t.ok(ttl > 0 && ttl <= 15 * 60 * 1000, `${key.slice(redisKey('').length)} expires (${ttl} ms)`);
  }
  t.same(await redis.keys(`count:*${account.email}*`), [], 'nothing outside the prefix');
  t.same(await redis.keys(`*${ip}*`).then((all) => all.filter((key) => !key.startsWith(redisKey('')))), [], 'ditto');
});

t.test('RATE_LIMIT_ENABLED=false: no 429 at all, and no counters', async (t) => {
  const off = await buildTestApp(t, {
    env: { ...LIMITS, RATE_LIMIT_ENABLED: 'false' },
  });
  const ip = '10.9.0.1';
  const accounts: Account[] = [];
  for (let i = 0; i < 4; i++) accounts.push(await registerFrom(off.app, ip));
  t.pass('four registrations from one address (budget 2) succeeded');
  const [account] = accounts as [Account];
  for (let attempt = 1; attempt <= 6; attempt++) {
    const response = await loginFrom(off.app, ip, account.email, WRONG);
    t.equal(response.statusCode, 401, `failure ${attempt}: 401, not 429`);
  }
  const right = await loginFrom(off.app, ip, account.email, account.password);
  t.equal(right.statusCode, 200, 'the right password still logs in');
  let refreshToken = right.json().refreshToken as string;
  for (let attempt = 1; attempt <= 4; attempt++) {
    const response = await refreshFrom(off.app, ip, refreshToken);
    t.equal(response.statusCode, 200, `refresh ${attempt}: 200`);
    refreshToken = response.json().refreshToken;
  }
  t.same(await off.redis.keys(off.redisKey('count:*')), [], 'no counters in Redis');
  t.equal((await eventsOf(off.app, account.id, 'rate_limited')).length, 0, 'no rate_limited events');
});

t.test('Redis unreachable: a rate-limited route answers 503, never passes unchecked', async (t) => {
  const servers = await testServers();
  const target = new URL(servers.redisUrl);
  const proxy = await startProxy(target.hostname, Number(target.port || 6379));
  t.teardown(() => proxy.close());
  const cut = await buildTestApp(t, { env: { ...LIMITS, REDIS_URL: proxy.url(servers.redisUrl) } });

  async function waitUntilReady(): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if ((await cut.app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('Redis did not come back through the proxy');
  }

  await waitUntilReady();
  const account = await registerFrom(cut.app, '10.10.0.1');
  await proxy.cut();
  try {
    const email = uniqueEmail('while-down');
    const register = await cut.app.inject({
      method: 'POST',
      url: '/auth/register',
      payload: { email, password: STRONG_PASSWORD },
      remoteAddress: '10.10.0.2',
    });
    assertError(t, register, 503, 'SERVICE_UNAVAILABLE', 'register');
    const stored = await cut.app.db.select().from(users).where(eq(users.email, email));
    t.equal(stored.length, 0, 'nothing was registered');
    assertError(
      t,
      await loginFrom(cut.app, '10.10.0.2', account.email, account.password),
      503,
      'SERVICE_UNAVAILABLE',
      'login',
    );
    assertError(t, await refreshFrom(cut.app, '10.10.0.2', 'a'.repeat(43)), 503, 'SERVICE_UNAVAILABLE', 'refresh');
  } finally {
    await proxy.restore();
  }
  await waitUntilReady();
  t.ok(await registerFrom(cut.app, '10.10.0.3'), 'once Redis answers again, registration works');
});
