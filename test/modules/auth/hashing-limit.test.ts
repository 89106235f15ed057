// argon2 behind a concurrency limit (ARGON2_CONCURRENCY) and a bounded queue (ARGON2_QUEUE_LIMIT), on real
// Postgres and Redis: a burst of logins never runs more hashes at once than the limit, and what the queue cannot hold
// is answered 503 SERVICE_UNAVAILABLE with Retry-After at once, without spending the caller's failure budget.
import t from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import { assertError, STRONG_PASSWORD, uniqueEmail } from '../../helpers/session-flow.js';

const { app } = await buildTestApp(t, {
  env: {
    ARGON2_CONCURRENCY: '1',
    ARGON2_QUEUE_LIMIT: '2',
    // A slower hash (the cost is a minimum, not a maximum), so a whole burst arrives while the first one runs.
    ARGON2_TIME_COST: '8',
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_LOGIN_PER_IP: '1000',
    RATE_LIMIT_REGISTER_PER_IP: '1000',
    RATE_LIMIT_LOGIN_FAILURES: '5',
  },
});

const email = uniqueEmail('hashing');
const register = await app.inject({
  method: 'POST',
  url: '/auth/register',
  payload: { email, password: STRONG_PASSWORD },
});
t.equal(register.statusCode, 201);

const login = (password: string, ip = '10.9.0.1') =>
  app.inject({ method: 'POST', url: '/auth/login', payload: { email, password }, remoteAddress: ip });

t.test('a burst: one hash at a time, the queue holds two, the rest are 503 with Retry-After', async (t) => {
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, app.passwords.load.running);
  }, 1);
  const responses = await Promise.all(
    Array.from({ length: 8 }, (_, index) => login(STRONG_PASSWORD, `10.9.1.${index}`)),
  );
  clearInterval(sampler);
  const ok = responses.filter((response) => response.statusCode === 200);
  const busy = responses.filter((response) => response.statusCode === 503);
  t.equal(ok.length, 3, 'the running one and the two queued ones log in');
  t.equal(busy.length, 5, 'the rest are turned away');
  for (const response of busy) {
    assertError(t, response, 503, 'SERVICE_UNAVAILABLE');
    t.match(response.headers['retry-after'], /^[1-9]\d*$/, 'Retry-After in whole seconds');
  }
  t.equal(peak, 1, 'never two hashes at once');
  t.same(app.passwords.load, { running: 0, waiting: 0 }, 'nothing left behind');
});

t.test('a 503 from the queue spends no failure slot', async (t) => {
  const ip = '10.9.2.1';
  const wrong = 'wrong password, surely';
  // Five wrong passwords at once, against a budget of five: one is checked, two wait and are checked, two are turned
  // away by the queue and give their slots back.
  const burst = await Promise.all(Array.from({ length: 5 }, () => login(wrong, ip)));
  const statuses = burst.map((response) => response.statusCode).sort();
  t.same(statuses, [401, 401, 401, 503, 503], 'three checked, two refused');
  // So two failures are left, not zero: two more wrong passwords are checked, and only then the budget is spent.
  t.equal((await login(wrong, ip)).statusCode, 401);
  t.equal((await login(wrong, ip)).statusCode, 401);
  assertError(
    t,
    await login(STRONG_PASSWORD, ip),
    429,
    'RATE_LIMITED',
    'the budget is spent by checked passwords only',
  );
});
