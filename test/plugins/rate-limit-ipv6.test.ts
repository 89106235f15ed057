// Per-IP budgets count an IPv6 client by its /64 (contract: Rate limits), behind a trusted proxy: one host rotating
// through the addresses of its prefix shares one budget; another /64 has its own.
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { assertError, type Response, register } from '../helpers/session-flow.js';

const { app } = await buildTestApp(t, {
  env: {
    TRUST_PROXY: 'true',
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_LOGIN_PER_IP: '3',
    RATE_LIMIT_LOGIN_FAILURES: '2',
    RATE_LIMIT_ACCOUNT_FAILURES: '100',
    RATE_LIMIT_REGISTER_PER_IP: '100',
  },
});

function loginVia(forwardedFor: string, email: string, password: string): Promise<Response> {
  return app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email, password },
    headers: { 'x-forwarded-for': forwardedFor },
  });
}

t.test('the login per-IP budget is shared by the addresses of one /64', async (t) => {
  const account = await register(app);
  const prefix = '2001:db8:a:b';
  const addresses = [`${prefix}::1`, `${prefix}:1:2:3:4`, `${prefix.toUpperCase()}::FFFF`];
  for (const address of addresses) {
    t.equal((await loginVia(address, account.email, account.password)).statusCode, 200, `${address}: 200`);
  }
  assertError(
    t,
    await loginVia(`${prefix}:dead:beef:0:1`, account.email, account.password),
    429,
    'RATE_LIMITED',
    'a fourth address of the same /64',
  );
  const other = await loginVia('2001:db8:a:c::1', account.email, account.password);
  t.equal(other.statusCode, 200, 'the neighbouring /64 has its own budget');
});

t.test('IPv4-mapped IPv6 shares the budget of its IPv4 address', async (t) => {
  const account = await register(app);
  for (const address of ['198.51.100.9', '::ffff:198.51.100.9', '198.51.100.9']) {
    t.equal((await loginVia(address, account.email, account.password)).statusCode, 200, `${address}: 200`);
  }
  assertError(t, await loginVia('::FFFF:198.51.100.9', account.email, account.password), 429, 'RATE_LIMITED', 'mapped');
});

t.test('the failed-login budget per (email, IP) is shared by the addresses of one /64', async (t) => {
  const account = await register(app);
  const wrong = 'definitely not the password';
  assertError(t, await loginVia('2001:db8:f:1::1', account.email, wrong), 401, 'INVALID_CREDENTIALS', 'failure 1');
  assertError(t, await loginVia('2001:db8:f:1::2', account.email, wrong), 401, 'INVALID_CREDENTIALS', 'failure 2');
  const limited = await loginVia('2001:db8:f:1:9:9:9:9', account.email, account.password);
  assertError(t, limited, 429, 'RATE_LIMITED', 'the right password from a third address of the /64');
  t.ok(Number(limited.headers['retry-after']) > 60, 'the failure window, not the per-IP minute');
  const other = await loginVia('2001:db8:f:2::1', account.email, account.password);
  t.equal(other.statusCode, 200, 'the same account from another /64: 200');
});
