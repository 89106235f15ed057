// Failure budgets under concurrency, on real Postgres and Redis (contract: Rate limits): a failure slot is reserved
// before the slow password check, so parallel guesses cannot overrun a budget; 429s do not count; the password
// change shares the account's budgets and has its own; rate_limited is recorded once per window per limit.
import t, { type Test } from 'tap';
import type { App } from '../../../src/app.js';
import { buildTestApp } from '../../helpers/app.js';
import {
  type Account,
  assertError,
  bearer,
  eventsOf,
  type LoggedIn,
  type Response,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../../helpers/session-flow.js';

const LOGIN_FAILURES = 5;
const ACCOUNT_FAILURES = 8;
const PASSWORD_FAILURES = 3;
const { app, redis, redisKey } = await buildTestApp(t, {
  env: {
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_LOGIN_PER_IP: '1000',
    RATE_LIMIT_REGISTER_PER_IP: '1000',
    RATE_LIMIT_REFRESH_PER_IP: '1000',
    RATE_LIMIT_LOGIN_FAILURES: String(LOGIN_FAILURES),
    RATE_LIMIT_ACCOUNT_FAILURES: String(ACCOUNT_FAILURES),
    RATE_LIMIT_PASSWORD_FAILURES: String(PASSWORD_FAILURES),
  },
});
const WRONG = 'definitely not the password';
const PARALLEL = 20;

// Every address below is used by one test only, so no budget leaks between tests.
let host = 0;
const freshIp = () => `10.77.${Math.floor(++host / 250)}.${host % 250}`;

async function registerAccount(target: App = app): Promise<Account> {
  const email = uniqueEmail('throttle');
  const response = await target.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email, password: STRONG_PASSWORD },
    remoteAddress: freshIp(),
  });
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.statusCode} ${response.body}`);
  return { id: response.json().user.id, email, password: STRONG_PASSWORD };
}

function loginFrom(ip: string, email: string, password: string): Promise<Response> {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { email, password }, remoteAddress: ip });
}

async function loggedInFrom(ip: string, account: Account): Promise<LoggedIn> {
  const response = await loginFrom(ip, account.email, account.password);
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`);
  const body = response.json();
  return { account, accessToken: body.accessToken, refreshToken: body.refreshToken, sessionId: '', response };
}

function changePasswordFrom(ip: string, session: LoggedIn, currentPassword: string): Promise<Response> {
  return app.inject({
    method: 'POST',
    url: '/auth/password',
    headers: bearer(session.accessToken),
    payload: { currentPassword, newPassword: 'a brand new passphrase 2024' },
    remoteAddress: ip,
  });
}

const statuses = (responses: Response[]) => {
  const counts: Record<number, number> = {};
  for (const response of responses) counts[response.statusCode] = (counts[response.statusCode] ?? 0) + 1;
  return counts;
};

const counter = async (key: string) => Number((await redis.get(redisKey(`count:${key}`))) ?? 0);

function assertLimited(t: Test, response: Response, label: string) {
  assertError(t, response, 429, 'RATE_LIMITED', label);
  const seconds = Number(response.headers['retry-after']);
  t.ok(seconds > 60 && seconds <= 900, `${label}: Retry-After ${seconds} is the 15-minute failure window`);
}

t.test(`${PARALLEL} parallel wrong passwords from one address: exactly ${LOGIN_FAILURES} are checked`, async (t) => {
  for (let round = 1; round <= 3; round++) {
    const account = await registerAccount();
    const ip = freshIp();
    const responses = await Promise.all(Array.from({ length: PARALLEL }, () => loginFrom(ip, account.email, WRONG)));
    t.strictSame(
      statuses(responses),
      { 401: LOGIN_FAILURES, 429: PARALLEL - LOGIN_FAILURES },
      `round ${round}: ${LOGIN_FAILURES} answered 401, the rest 429`,
    );
    for (const response of responses.filter((response) => response.statusCode === 429)) {
      assertLimited(t, response, `round ${round}: a refused guess`);
    }
    t.equal(await counter(`login-fail:${account.email}|${ip}`), LOGIN_FAILURES, `round ${round}: 429s not counted`);
    t.equal(await counter(`login-fail:${account.email}`), LOGIN_FAILURES, `round ${round}: nor across addresses`);
    t.equal((await eventsOf(app, account.id, 'login_failed')).length, LOGIN_FAILURES, `round ${round}: events`);
    assertLimited(t, await loginFrom(ip, account.email, account.password), `round ${round}: the right password`);
    const elsewhere = await loginFrom(freshIp(), account.email, account.password);
    t.equal(elsewhere.statusCode, 200, `round ${round}: the right password from another address: 200`);
  }
});

t.test(`${PARALLEL} parallel wrong passwords from as many addresses: the account budget holds`, async (t) => {
  for (let round = 1; round <= 3; round++) {
    const account = await registerAccount();
    const responses = await Promise.all(
      Array.from({ length: PARALLEL }, () => loginFrom(freshIp(), account.email, WRONG)),
    );
    t.strictSame(
      statuses(responses),
      { 401: ACCOUNT_FAILURES, 429: PARALLEL - ACCOUNT_FAILURES },
      `round ${round}: ${ACCOUNT_FAILURES} answered 401, the rest 429`,
    );
    t.equal(await counter(`login-fail:${account.email}`), ACCOUNT_FAILURES, `round ${round}: 429s not counted`);
    assertLimited(t, await loginFrom(freshIp(), account.email, account.password), `round ${round}: right password`);
  }
});

t.test('an unregistered email is throttled the same way under concurrency', async (t) => {
  const email = uniqueEmail('ghost');
  const ip = freshIp();
  const responses = await Promise.all(Array.from({ length: PARALLEL }, () => loginFrom(ip, email, WRONG)));
  t.strictSame(statuses(responses), { 401: LOGIN_FAILURES, 429: PARALLEL - LOGIN_FAILURES });
});

t.test('a correct password gives its slot back and clears the failures from its address only', async (t) => {
  const account = await registerAccount();
  const ip = freshIp();
  for (let attempt = 1; attempt < LOGIN_FAILURES; attempt++) {
    assertError(t, await loginFrom(ip, account.email, WRONG), 401, 'INVALID_CREDENTIALS', `failure ${attempt}`);
  }
  t.equal((await loginFrom(ip, account.email, account.password)).statusCode, 200, 'the right password: 200');
  t.equal(await counter(`login-fail:${account.email}|${ip}`), 0, 'the failures from the address are cleared');
  t.equal(await counter(`login-fail:${account.email}`), LOGIN_FAILURES - 1, 'the account keeps its failures');
  // An attempt in flight holds a slot until its verdict: within the budget, right passwords all get in.
  const parallel = await Promise.all(Array.from({ length: 3 }, () => loginFrom(ip, account.email, account.password)));
  t.strictSame(statuses(parallel), { 200: 3 }, 'right passwords in parallel, within the budget: 200');
  t.equal(await counter(`login-fail:${account.email}`), LOGIN_FAILURES - 1, 'and are not counted');
});

t.test('rate_limited is recorded once per window per account and limit', async (t) => {
  const account = await registerAccount();
  const ip = freshIp();
  for (let attempt = 1; attempt <= LOGIN_FAILURES; attempt++) await loginFrom(ip, account.email, WRONG);
  const blocked = await Promise.all(Array.from({ length: 40 }, () => loginFrom(ip, account.email, WRONG)));
  t.strictSame(statuses(blocked), { 429: 40 }, '40 blocked logins');
  const events = await eventsOf(app, account.id, 'rate_limited');
  t.equal(events.length, 1, 'one rate_limited event');
  t.match(events[0]?.details, { limit: 'login_failures' });
});

t.test('POST /auth/password: a per-user budget of wrong current passwords, recorded as login_failed', async (t) => {
  const account = await registerAccount();
  const ip = freshIp();
  const session = await loggedInFrom(freshIp(), account);
  const responses = await Promise.all(Array.from({ length: 10 }, () => changePasswordFrom(freshIp(), session, WRONG)));
  t.strictSame(
    statuses(responses),
    { 401: PASSWORD_FAILURES, 429: 10 - PASSWORD_FAILURES },
    `${PASSWORD_FAILURES} answered 401 INVALID_CREDENTIALS, the rest 429`,
  );
  for (const response of responses) {
    if (response.statusCode === 401) assertError(t, response, 401, 'INVALID_CREDENTIALS', 'a wrong password');
    else assertLimited(t, response, 'a refused change');
  }
  assertLimited(t, await changePasswordFrom(ip, session, STRONG_PASSWORD), 'the right password while it holds');
  const failures = await eventsOf(app, account.id, 'login_failed');
  t.equal(failures.length, PASSWORD_FAILURES, 'a login_failed event per wrong password');
  t.ok(
    failures.every((event) => (event.details as { reason?: string })?.reason === 'wrong_current_password'),
    'with reason wrong_current_password',
  );
  const limited = await eventsOf(app, account.id, 'rate_limited');
  t.equal(limited.length, 1, 'one rate_limited event');
  t.match(limited[0]?.details, { limit: 'password_failures' });
  t.equal((await loginFrom(freshIp(), account.email, STRONG_PASSWORD)).statusCode, 200, 'the password is unchanged');
});

t.test('POST /auth/password shares the failure budget per (email, IP) with login', async (t) => {
  const account = await registerAccount();
  const ip = freshIp();
  const session = await loggedInFrom(freshIp(), account);
  for (let attempt = 1; attempt < LOGIN_FAILURES; attempt++) {
    assertError(t, await loginFrom(ip, account.email, WRONG), 401, 'INVALID_CREDENTIALS', `login failure ${attempt}`);
  }
  assertError(t, await changePasswordFrom(ip, session, WRONG), 401, 'INVALID_CREDENTIALS', 'the fifth failure');
  assertLimited(t, await changePasswordFrom(ip, session, STRONG_PASSWORD), 'the right password from that address');
  assertLimited(t, await loginFrom(ip, account.email, STRONG_PASSWORD), 'and a login from it');
});

t.test('POST /auth/password shares the failure budget of the account across addresses', async (t) => {
  const account = await registerAccount();
  const session = await loggedInFrom(freshIp(), account);
  for (let attempt = 1; attempt < ACCOUNT_FAILURES; attempt++) {
    assertError(t, await loginFrom(freshIp(), account.email, WRONG), 401, 'INVALID_CREDENTIALS', `failure ${attempt}`);
  }
  assertError(t, await changePasswordFrom(freshIp(), session, WRONG), 401, 'INVALID_CREDENTIALS', 'the last failure');
  assertLimited(t, await changePasswordFrom(freshIp(), session, STRONG_PASSWORD), 'the right password, anywhere');
  assertLimited(t, await loginFrom(freshIp(), account.email, STRONG_PASSWORD), 'and a login, anywhere');
});

t.test('POST /auth/password: the right current password keeps the budget and works', async (t) => {
  const account = await registerAccount();
  const ip = freshIp();
  const session = await loggedInFrom(freshIp(), account);
  assertError(t, await changePasswordFrom(ip, session, WRONG), 401, 'INVALID_CREDENTIALS', 'one failure');
  t.equal((await changePasswordFrom(ip, session, STRONG_PASSWORD)).statusCode, 204, 'the right password: 204');
  t.equal(await counter(`password-fail:${account.id}`), 0, 'the per-user failures are cleared');
  t.equal(await counter(`login-fail:${account.email}`), 1, 'the account keeps its failure');
});

t.test('RATE_LIMIT_ENABLED=false: no budget on the password change either', async (t) => {
  const off = await buildTestApp(t, { env: { RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_PASSWORD_FAILURES: '1' } });
  const account = await registerAccount(off.app);
  const login = await off.app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: account.password },
  });
  const headers = bearer(login.json().accessToken);
  for (let attempt = 1; attempt <= 3; attempt++) {
    const response = await off.app.inject({
      method: 'POST',
      url: '/auth/password',
      headers,
      payload: { currentPassword: WRONG, newPassword: 'a brand new passphrase 2024' },
    });
    t.equal(response.statusCode, 401, `failure ${attempt}: 401`);
  }
});
