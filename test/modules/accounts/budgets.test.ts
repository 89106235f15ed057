// Mail budgets (contract: Accounts, v1.1; Details: v1.1 choices, Rate limits): RATE_LIMIT_MAIL_PER_IP per IP for
// each of the three request routes on its own, RATE_LIMIT_MAIL_PER_EMAIL per address and purpose (the registration's
// verification mail included), the same for unknown addresses, 429s that do not count, no mail beyond the budget,
// and counters in Redis under the app's prefix, shared by every instance.
import t, { type Test } from 'tap';
import type { App } from '../../../src/app.js';
import { buildTestApp } from '../../helpers/app.js';
import {
  type Account,
  assertError,
  bearer,
  eventsOf,
  login,
  type Response,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../../helpers/session-flow.js';
import { startSmtpSink } from '../../helpers/smtp.js';

const PER_IP = 10;
const PER_EMAIL = 3;
const LIMITS = {
  RATE_LIMIT_ENABLED: 'true',
  RATE_LIMIT_MAIL_PER_IP: String(PER_IP),
  RATE_LIMIT_MAIL_PER_EMAIL: String(PER_EMAIL),
  // Setup logins and registrations come from many addresses; their own budgets are not under test here.
  RATE_LIMIT_LOGIN_PER_IP: '1000',
  RATE_LIMIT_REGISTER_PER_IP: '1000',
};
const HOUR = 3600;

const smtp = await startSmtpSink(t);
const built = await buildTestApp(t, { env: { ...LIMITS, SMTP_URL: smtp.url } });
const { app, redis, redisKey } = built;
// A second instance on the same Redis prefix and database: the counters must be shared.
const twin = await buildTestApp(t, {
  env: { ...LIMITS, SMTP_URL: smtp.url },
  databaseUrl: built.databaseUrl,
  redisKeyPrefix: redisKey(''),
});

let hostCount = 0;
/** A fresh client address, so a budget under test is only spent by the requests that mean to. */
const freshIp = () => {
  hostCount++;
  return `10.${20 + Math.floor(hostCount / 62500)}.${Math.floor(hostCount / 250) % 250}.${hostCount % 250}`;
};

const VERIFY = '/auth/verify-email/request';
const RESET = '/auth/password-reset/request';

function mailRequest(target: App, url: string, email: string, remoteAddress: string): Promise<Response> {
  return target.inject({ method: 'POST', url, payload: { email }, remoteAddress });
}

async function registerFrom(target: App, email = uniqueEmail('budget')): Promise<Account> {
  const response = await target.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email, password: STRONG_PASSWORD },
    remoteAddress: freshIp(),
  });
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.statusCode} ${response.body}`);
  return { id: response.json().user.id, email, password: STRONG_PASSWORD };
}

/** 429 RATE_LIMITED in the contract's shape, with a Retry-After of whole seconds within the hour. */
function assertLimited(t: Test, response: Response, label: string) {
  assertError(t, response, 429, 'RATE_LIMITED', label);
  const retryAfter = String(response.headers['retry-after']);
  t.match(retryAfter, /^\d+$/, `${label}: Retry-After is whole seconds`);
  t.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= HOUR, `${label}: Retry-After ${retryAfter} within the hour`);
}

const counter = async (key: string) => Number((await redis.get(redisKey(`count:${key}`))) ?? 0);

t.test('per IP: each request route has its own budget of RATE_LIMIT_MAIL_PER_IP an hour', async (t) => {
  const ip = freshIp();
  for (const url of [VERIFY, RESET]) {
    for (let i = 1; i <= PER_IP; i++) {
      // A new address each time: only the per-IP budget can run out.
      const response = await mailRequest(app, url, uniqueEmail('ip'), ip);
      t.equal(response.statusCode, 202, `${url} #${i}: 202`);
    }
    assertLimited(t, await mailRequest(app, url, uniqueEmail('ip'), ip), `${url} #${PER_IP + 1}`);
    t.equal((await mailRequest(app, url, uniqueEmail('ip'), freshIp())).statusCode, 202, `${url}: another IP passes`);
  }

  // POST /auth/email from the same address: its budget is untouched by the two routes above.
  const caller = await login(app, await registerFrom(app));
  const change = (remoteAddress: string) =>
    app.inject({
      method: 'POST',
      url: '/auth/email',
      headers: bearer(caller.accessToken),
      payload: { newEmail: uniqueEmail('new'), currentPassword: STRONG_PASSWORD },
      remoteAddress,
    });
  for (let i = 1; i <= PER_IP; i++) t.equal((await change(ip)).statusCode, 202, `POST /auth/email #${i}: 202`);
  assertLimited(t, await change(ip), `POST /auth/email #${PER_IP + 1}`);
  t.equal((await change(freshIp())).statusCode, 202, 'POST /auth/email: another IP passes');
});

t.test('per address and purpose: RATE_LIMIT_MAIL_PER_EMAIL an hour, counted at the SMTP sink', async (t) => {
  const account = await registerFrom(app);
  const other = await registerFrom(app);
  await app.accounts.settled();
  t.equal(smtp.to(account.email).length, 1, 'registration sent one verification mail');

  for (let i = 1; i <= PER_EMAIL; i++) {
    t.equal((await mailRequest(app, RESET, account.email, freshIp())).statusCode, 202, `reset #${i}: 202`);
  }
  const limited = await mailRequest(app, RESET, account.email, freshIp());
  assertLimited(t, limited, `reset #${PER_EMAIL + 1}, from yet another IP`);
  t.equal((await mailRequest(app, RESET, other.email, freshIp())).statusCode, 202, 'another address still passes');

  // The verification budget is its own, but the registration's mail spent one of it.
  for (let i = 1; i < PER_EMAIL; i++) {
    t.equal((await mailRequest(app, VERIFY, account.email, freshIp())).statusCode, 202, `verify #${i}: 202`);
  }
  assertLimited(
    t,
    await mailRequest(app, VERIFY, account.email, freshIp()),
    `verify #${PER_EMAIL}: the registration's mail counted`,
  );

  // Requests answered 429 do not count: the counters stay at the budget, not above it.
  assertLimited(t, await mailRequest(app, RESET, account.email, freshIp()), 'reset again');
  t.equal(await counter(`mail:password_reset:${account.email}`), PER_EMAIL, 'reset counter: the budget, no more');
  t.equal(await counter(`mail:verify_email:${account.email}`), PER_EMAIL, 'verify counter: the budget, no more');

  await app.accounts.settled();
  const mails = smtp.to(account.email);
  const kinds = (page: string) => mails.filter((mail) => mail.links[0]?.includes(`/${page}?token=`)).length;
  t.equal(kinds('reset-password'), PER_EMAIL, 'exactly the budget of reset mails went out');
  t.equal(kinds('verify-email'), PER_EMAIL, 'exactly the budget of verification mails, registration included');
  t.equal(mails.length, 2 * PER_EMAIL, 'nothing else');
  t.equal(smtp.to(other.email).filter((mail) => mail.links[0]?.includes('/reset-password?')).length, 1);
  const limits = (await eventsOf(app, account.id, 'rate_limited')).map((event) => event.details?.limit).sort();
  t.same(
    limits,
    ['mail_per_email:password_reset', 'mail_per_email:verify_email'],
    'rate_limited in the account events, once per purpose and window',
  );
});

t.test('unknown addresses are limited exactly like known ones', async (t) => {
  const known = await registerFrom(app);
  const unknown = uniqueEmail('nobody');
  await app.accounts.settled();
  const answers = async (email: string) => {
    const statuses: number[] = [];
    for (let i = 0; i <= PER_EMAIL; i++) statuses.push((await mailRequest(app, RESET, email, freshIp())).statusCode);
    return statuses;
  };
  const forKnown = await answers(known.email);
  const forUnknown = await answers(unknown);
  t.same(forKnown, [202, 202, 202, 429], 'known: the budget, then 429');
  t.same(forUnknown, forKnown, 'unknown: the same');
  const lastKnown = await mailRequest(app, RESET, known.email, freshIp());
  const lastUnknown = await mailRequest(app, RESET, unknown, freshIp());
  assertLimited(t, lastUnknown, 'unknown');
  t.equal(lastUnknown.body, lastKnown.body, 'the same 429 body');
  await app.accounts.settled();
  t.equal(smtp.to(unknown).length, 0, 'nothing was sent to the unknown address');
});

t.test('a spent verification budget: registration sends no verification mail', async (t) => {
  const email = uniqueEmail('early');
  for (let i = 1; i <= PER_EMAIL; i++) {
    t.equal((await mailRequest(app, VERIFY, email, freshIp())).statusCode, 202, `verify (not yet registered) #${i}`);
  }
  await registerFrom(app, email);
  await app.accounts.settled();
  t.equal(smtp.to(email).length, 0, 'the budget held for the registration too');
  t.equal(await counter(`mail:verify_email:${email}`), PER_EMAIL, 'and it did not count');
});

t.test('a request refused by the per-IP budget spends nothing of the address', async (t) => {
  const ip = freshIp();
  for (let i = 0; i < PER_IP; i++) await mailRequest(app, RESET, uniqueEmail('filler'), ip);
  const account = await registerFrom(app);
  for (let i = 0; i < 3; i++)
    assertLimited(t, await mailRequest(app, RESET, account.email, ip), `per-IP 429 #${i + 1}`);
  t.equal(await counter(`mail:password_reset:${account.email}`), 0, 'the address budget is untouched');
  for (let i = 1; i <= PER_EMAIL; i++) {
    t.equal((await mailRequest(app, RESET, account.email, freshIp())).statusCode, 202, `from elsewhere #${i}`);
  }
});

t.test('counters live in Redis under the app prefix: two instances share them', async (t) => {
  const account = await registerFrom(app);
  await app.accounts.settled();
  const before = smtp.to(account.email).length;
  t.equal((await mailRequest(app, RESET, account.email, freshIp())).statusCode, 202, 'instance 1: reset #1');
  t.equal((await mailRequest(twin.app, RESET, account.email, freshIp())).statusCode, 202, 'instance 2: reset #2');
  t.equal((await mailRequest(app, RESET, account.email, freshIp())).statusCode, 202, 'instance 1: reset #3');
  assertLimited(t, await mailRequest(twin.app, RESET, account.email, freshIp()), 'instance 2: reset #4');
  assertLimited(t, await mailRequest(app, RESET, account.email, freshIp()), 'instance 1: reset #5');

  const ip = freshIp();
  for (let i = 1; i <= PER_IP; i++) {
    const target = i % 2 ? app : twin.app;
    t.equal((await mailRequest(target, VERIFY, uniqueEmail('shared'), ip)).statusCode, 202, `per IP #${i}`);
  }
  assertLimited(t, await mailRequest(twin.app, VERIFY, uniqueEmail('shared'), ip), 'instance 2: per IP, one over');
  assertLimited(t, await mailRequest(app, VERIFY, uniqueEmail('shared'), ip), 'instance 1: per IP, one over');

  const keys = (await redis.keys(redisKey(`count:*${account.email}*`))).sort();
  t.same(
    keys,
    [redisKey(`count:mail:password_reset:${account.email}`), redisKey(`count:mail:verify_email:${account.email}`)],
    'the address counters (reset, and the registration verification), under the prefix',
  );
  for (const key of keys) {
    const ttl = await redis.pttl(key);
    t.ok(ttl > 0 && ttl <= HOUR * 1000, `${key.slice(redisKey('').length)} expires within the hour (${ttl} ms)`);
  }
  t.ok((await redis.keys(redisKey(`count:rl:mail-verify:${ip}`))).length === 1, 'the per-IP counter too');
  t.same(
    (await redis.keys(`*${account.email}*`)).filter((key) => !key.startsWith(redisKey(''))),
    [],
    'nothing outside the prefix',
  );

  await Promise.all([app.accounts.settled(), twin.app.accounts.settled()]);
  const resets = smtp.to(account.email).slice(before);
  t.equal(resets.length, PER_EMAIL, 'the two instances together sent the budget, no more');
});
