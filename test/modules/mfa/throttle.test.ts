// Wrong codes at /auth/mfa/verify are failed logins of the account (contract, v1.1 choices): they spend the login
// failure budget of (email, IP), so after five even the right password gets 429, from that address only.
import t, { type Test } from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import { type Account, assertError, eventsOf, type Response, registerAndLogin } from '../../helpers/session-flow.js';
import {
  codeNow,
  disableTotp,
  type Enrolled,
  enrolTotp,
  nextStep,
  startMfaLogin,
  stepAlignedClock,
  verifyMfa,
  wrongCodeNow,
} from '../../helpers/totp-flow.js';

const LOGIN_FAILURES = 5;
const clock = stepAlignedClock(TestClock);
const { app } = await buildTestApp(t, {
  clock,
  env: {
    EMAIL_VERIFICATION: 'off',
    ACCESS_TOKEN_TTL: '86400',
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_LOGIN_FAILURES: String(LOGIN_FAILURES),
    RATE_LIMIT_LOGIN_PER_IP: '1000',
    RATE_LIMIT_REGISTER_PER_IP: '1000',
    RATE_LIMIT_REFRESH_PER_IP: '1000',
  },
});

// Every test has its own address, so no budget leaks between tests.
let host = 0;
const freshIp = () => `10.88.0.${++host}`;

function loginFrom(ip: string, account: Account): Promise<Response> {
  return app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: account.password },
    remoteAddress: ip,
  });
}

function assertLimited(t: Test, response: Response, label: string) {
  assertError(t, response, 429, 'RATE_LIMITED', label);
  t.ok(Number(response.headers['retry-after']) > 0, `${label}: Retry-After`);
}

async function wrongCodes(t: Test, ip: string, mfaToken: string, totp: Enrolled, count: number) {
  for (let attempt = 1; attempt <= count; attempt++) {
    const response = await verifyMfa(app, { mfaToken, code: wrongCodeNow(totp.secret, clock) }, ip);
    assertError(t, response, 401, 'MFA_CODE_INVALID', `wrong code ${attempt}`);
  }
}

const enrolled = async () => {
  const session = await registerAndLogin(app);
  return { account: session.account, totp: await enrolTotp(app, clock, session.accessToken, session.account.password) };
};

t.test('after five wrong codes, even the right password gets 429 from that address', async (t) => {
  const { account, totp } = await enrolled();
  const ip = freshIp();
  await wrongCodes(t, ip, await startMfaLogin(app, account, { remoteAddress: ip }), totp, LOGIN_FAILURES);

  assertLimited(t, await loginFrom(ip, account), 'the right password');
  t.ok((await eventsOf(app, account.id, 'rate_limited')).length >= 1, 'rate_limited recorded for the account');

  // Another address of the same account is not locked out, and its mfaToken cannot be spent from the limited one.
  const elsewhere = freshIp();
  const mfaToken = await startMfaLogin(app, account, { remoteAddress: elsewhere });
  assertLimited(
    t,
    await verifyMfa(app, { mfaToken, code: codeNow(totp.secret, clock) }, ip),
    'verify from the limited',
  );
  const ok = await verifyMfa(app, { mfaToken, code: codeNow(totp.secret, clock) }, elsewhere);
  t.equal(ok.statusCode, 200, 'the other address completes the login (the 429 spent nothing)');
  nextStep(clock);
});

t.test('four wrong codes leave the right password accepted', async (t) => {
  const { account, totp } = await enrolled();
  const ip = freshIp();
  await wrongCodes(t, ip, await startMfaLogin(app, account, { remoteAddress: ip }), totp, LOGIN_FAILURES - 1);
  const response = await loginFrom(ip, account);
  t.equal(response.statusCode, 200, 'not limited yet');
  t.equal(response.json().mfaRequired, true);
});

t.test('the password step does not clear failures of the second step: a new mfaToken gets no new budget', async (t) => {
  const { account, totp } = await enrolled();
  const ip = freshIp();
  await wrongCodes(t, ip, await startMfaLogin(app, account, { remoteAddress: ip }), totp, LOGIN_FAILURES - 1);
  // The right password again: a new mfaToken, but the four wrong codes still count.
  const second = await startMfaLogin(app, account, { remoteAddress: ip });
  await wrongCodes(t, ip, second, totp, 1);
  assertLimited(t, await loginFrom(ip, account), 'five wrong codes over two mfaTokens');
});

t.test('a completed login clears the address budget, like a right password without TOTP', async (t) => {
  const { account, totp } = await enrolled();
  const ip = freshIp();
  const mfaToken = await startMfaLogin(app, account, { remoteAddress: ip });
  await wrongCodes(t, ip, mfaToken, totp, LOGIN_FAILURES - 1);
  t.equal((await verifyMfa(app, { mfaToken, code: codeNow(totp.secret, clock) }, ip)).statusCode, 200);
  nextStep(clock);
  await wrongCodes(t, ip, await startMfaLogin(app, account, { remoteAddress: ip }), totp, LOGIN_FAILURES - 1);
  t.equal((await loginFrom(ip, account)).statusCode, 200, 'four more wrong codes are within the budget again');
});

t.test(
  'wrong codes at disable and recovery-codes spend the budgets too: the right password cannot reset them',
  async (t) => {
    const session = await registerAndLogin(app);
    const totp = await enrolTotp(app, clock, session.accessToken, session.account.password);
    const proof = (code: string) => ({ currentPassword: session.account.password, code });
    for (let attempt = 1; attempt <= 5; attempt++) {
      nextStep(clock);
      const route = attempt % 2 === 0 ? '/auth/mfa/recovery-codes' : '/auth/mfa/totp/disable';
      const response = await app.inject({
        method: 'POST',
        url: route,
        headers: { authorization: `Bearer ${session.accessToken}` },
        payload: proof(wrongCodeNow(totp.secret, clock)),
      });
      assertError(t, response, 401, 'MFA_CODE_INVALID', `${route}: wrong code ${attempt}`);
    }
    nextStep(clock);
    const blocked = await disableTotp(app, session.accessToken, proof(codeNow(totp.secret, clock)));
    assertLimited(t, blocked, 'the right password and the right code, after five wrong codes');
    t.equal(
      (await eventsOf(app, session.account.id, 'mfa_failed')).length,
      5,
      'each wrong code is an mfa_failed event',
    );
  },
);
