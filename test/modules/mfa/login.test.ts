// The login's second step with TOTP: the password step issues nothing; POST /auth/mfa/verify exchanges the mfaToken
// and a fresh code for a session whose every access token, refreshed ones included, carries amr pwd+otp+mfa. A code
// works once, even raced; an mfaToken works once, dies after five wrong codes, after 300 s, or when the password
// changes meanwhile, and is stored only as its SHA-256.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { mfaChallenges, sessions } from '../../../src/db/schema.js';
import { sha256 } from '../../../src/lib/ids.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  type Account,
  assertError,
  bearer,
  COOKIES,
  claimsOf,
  codeOf,
  cookiesOf,
  eventsOf,
  type LoggedIn,
  loginRequest,
  me,
  type Response,
  refresh,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';
import {
  codeNow,
  type Enrolled,
  enrolTotp,
  nextStep,
  startMfaLogin,
  stepAlignedClock,
  verifyMfa,
  wrongCodeNow,
} from '../../helpers/totp-flow.js';

const MFA_AMR = ['pwd', 'otp', 'mfa'];
const clock = stepAlignedClock(TestClock);
const { app } = await buildTestApp(t, {
  clock,
  env: { ACCESS_TOKEN_TTL: '86400', EMAIL_VERIFICATION: 'off' },
});

// One enrolled account for most tests (its logins cost one argon2 verify each).
const alice: LoggedIn = await registerAndLogin(app);
const aliceTotp: Enrolled = await enrolTotp(app, clock, alice.accessToken, alice.account.password);
const code = () => codeNow(aliceTotp.secret, clock);
const wrong = () => wrongCodeNow(aliceTotp.secret, clock);

const sessionsOf = async (userId: string) =>
  (await app.db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, userId))).length;

const histogram = (values: number[]) => {
  const counts: Record<number, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
};

const statuses = (responses: Response[]) =>
  responses.map((response) => `${response.statusCode} ${codeOf(response) ?? ''}`.trim()).sort();

t.test('with TOTP, the right password answers mfaRequired and issues nothing, in either transport', async (t) => {
  for (const transport of [undefined, 'body', 'cookie'] as const) {
    const label = `transport ${transport ?? 'default'}`;
    const sessionsBefore = await sessionsOf(alice.account.id);
    const succeededBefore = (await eventsOf(app, alice.account.id, 'login_succeeded')).length;
    const response = await loginRequest(app, alice.account.email, alice.account.password, { transport });
    t.equal(response.statusCode, 200, label);
    const body = response.json();
    t.strictSame(Object.keys(body).sort(), ['methods', 'mfaExpiresIn', 'mfaRequired', 'mfaToken'], `${label}: exactly`);
    t.equal(body.mfaRequired, true);
    t.equal(body.mfaExpiresIn, 300);
    t.strictSame(body.methods, ['totp', 'recovery_code']);
    t.match(body.mfaToken, /^[A-Za-z0-9_-]{43,}$/, 'opaque, at least 256 bits of base64url');
    t.equal(response.headers['set-cookie'], undefined, `${label}: no cookie`);
    t.equal(response.headers['cache-control'], 'no-store');
    t.notOk('accessToken' in body || 'refreshToken' in body || 'csrfToken' in body, `${label}: no tokens`);
    t.equal(await sessionsOf(alice.account.id), sessionsBefore, `${label}: no session opened`);
    t.equal(
      (await eventsOf(app, alice.account.id, 'login_succeeded')).length,
      succeededBefore,
      `${label}: not a successful login yet`,
    );
  }
  assertError(
    t,
    await loginRequest(app, alice.account.email, 'not the password'),
    401,
    'INVALID_CREDENTIALS',
    'a wrong password is still the one answer',
  );
});

t.test('mfa_challenges holds only the SHA-256 of the mfaToken, and the hash is no token', async (t) => {
  const mfaToken = await startMfaLogin(app, alice.account);
  const rows = await app.db.select().from(mfaChallenges).where(eq(mfaChallenges.userId, alice.account.id));
  const mine = rows.filter((row) => row.tokenHash === sha256(mfaToken));
  t.equal(mine.length, 1, 'one row, keyed by the SHA-256');
  t.notOk(JSON.stringify(rows).includes(mfaToken), 'the token itself is in no row');
  t.equal(mine[0]?.failures, 0);
  t.equal(mine[0]?.expiresAt.getTime(), clock.now() + 300_000, 'expires 300 s after the password step');
  assertError(t, await verifyMfa(app, { mfaToken: sha256(mfaToken), code: code() }), 401, 'MFA_TOKEN_INVALID');
  t.equal((await verifyMfa(app, { mfaToken, code: code() })).statusCode, 200, 'control: the token itself works');
  nextStep(clock);
});

t.test('verify, body transport: tokens in the body, amr pwd+otp+mfa, kept across refreshes', async (t) => {
  const mfaToken = await startMfaLogin(app, alice.account);
  const succeededBefore = (await eventsOf(app, alice.account.id, 'login_succeeded')).length;
  const response = await verifyMfa(app, { mfaToken, code: code() });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['set-cookie'], undefined, 'no cookie');
  t.equal(response.headers['cache-control'], 'no-store');
  const body = response.json();
  t.match(body, {
    accessToken: String,
    tokenType: 'Bearer',
    expiresIn: 86400,
    refreshToken: String,
    refreshExpiresIn: Number,
    user: { id: alice.account.id, email: alice.account.email, mfaEnabled: true },
  });
  t.strictSame(claimsOf(body.accessToken).amr, MFA_AMR, 'amr');
  t.equal(claimsOf(body.accessToken).sub, alice.account.id);
  t.equal((await me(app, body.accessToken)).statusCode, 200, 'the access token is accepted');
  const session = await sessionRow(app, claimsOf(body.accessToken).sid);
  t.strictSame(session?.amr, MFA_AMR, 'the session remembers its amr');
  t.equal((await eventsOf(app, alice.account.id, 'login_succeeded')).length, succeededBefore + 1, 'login_succeeded');

  let refreshToken = body.refreshToken;
  for (const round of [1, 2]) {
    clock.advance(60_000);
    const refreshed = await refresh(app, refreshToken);
    t.equal(refreshed.statusCode, 200, `refresh ${round}`);
    t.strictSame(claimsOf(refreshed.json().accessToken).amr, MFA_AMR, `refresh ${round}: amr kept`);
    t.equal((await me(app, refreshed.json().accessToken)).statusCode, 200);
    refreshToken = refreshed.json().refreshToken;
  }
  nextStep(clock);
});

t.test('verify, cookie transport: cookies set, tokens not in the body; a cookie refresh keeps amr', async (t) => {
  const mfaToken = await startMfaLogin(app, alice.account, { transport: 'cookie' });
  const response = await verifyMfa(app, { mfaToken, code: code(), transport: 'cookie' });
  t.equal(response.statusCode, 200);
  const body = response.json();
  t.notOk('accessToken' in body, 'no access token in the body');
  t.notOk('refreshToken' in body, 'no refresh token in the body');
  t.match(body, { tokenType: 'Bearer', csrfToken: String, user: { id: alice.account.id } });
  const cookies = cookiesOf(response);
  const access = cookies[COOKIES.access];
  const refreshCookie = cookies[COOKIES.refresh];
  const csrf = cookies[COOKIES.csrf];
  t.ok(access && refreshCookie && csrf, 'the three cookies');
  t.match(access, { httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
  t.match(refreshCookie, { httpOnly: true, secure: true, sameSite: 'Strict', path: '/auth' });
  t.equal(csrf?.value, body.csrfToken, 'the csrf cookie is the body value');
  t.strictSame(claimsOf(access?.value ?? '').amr, MFA_AMR, 'amr in the access cookie');
  const byCookie = await app.inject({
    method: 'GET',
    url: '/users/me',
    cookies: { [COOKIES.access]: access?.value ?? '' },
  });
  t.equal(byCookie.statusCode, 200, 'the access cookie authenticates');

  clock.advance(60_000);
  const refreshed = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    cookies: { [COOKIES.refresh]: refreshCookie?.value ?? '', [COOKIES.csrf]: csrf?.value ?? '' },
    headers: { 'x-csrf-token': csrf?.value ?? '' },
  });
  t.equal(refreshed.statusCode, 200, 'refresh by cookie');
  t.strictSame(claimsOf(cookiesOf(refreshed)[COOKIES.access]?.value ?? '').amr, MFA_AMR, 'amr kept');
  nextStep(clock);
});

t.test('a plain login (no TOTP) has amr ["pwd"], kept by refresh', async (t) => {
  const plain = await registerAndLogin(app);
  t.strictSame(claimsOf(plain.accessToken).amr, ['pwd']);
  t.strictSame((await sessionRow(app, plain.sessionId))?.amr, ['pwd']);
  const refreshed = await refresh(app, plain.refreshToken);
  t.strictSame(claimsOf(refreshed.json().accessToken).amr, ['pwd'], 'after a refresh');
  // And the session opened before TOTP was enabled keeps ["pwd"]: enabling does not upgrade it.
  t.strictSame(claimsOf(alice.accessToken).amr, ['pwd']);
  const { mfaToken } = (await loginRequest(app, plain.account.email, plain.account.password)).json();
  t.equal(mfaToken, undefined, 'no second step without TOTP');
});

t.test('a code works once: replayed at another mfaToken it is MFA_CODE_INVALID; an mfaToken works once', async (t) => {
  const first = await startMfaLogin(app, alice.account);
  const second = await startMfaLogin(app, alice.account);
  const used = code();
  t.equal((await verifyMfa(app, { mfaToken: first, code: used })).statusCode, 200);
  assertError(t, await verifyMfa(app, { mfaToken: second, code: used }), 401, 'MFA_CODE_INVALID', 'replayed code');
  // The previous step's code is within the window, but older than the used one.
  assertError(
    t,
    await verifyMfa(app, { mfaToken: second, code: codeNow(aliceTotp.secret, clock, -1) }),
    401,
    'MFA_CODE_INVALID',
  );
  nextStep(clock);
  assertError(t, await verifyMfa(app, { mfaToken: first, code: code() }), 401, 'MFA_TOKEN_INVALID', 'used mfaToken');
  assertError(
    t,
    await verifyMfa(app, { mfaToken: first, recoveryCode: aliceTotp.recoveryCodes[9] ?? '' }),
    401,
    'MFA_TOKEN_INVALID',
    'used mfaToken, with a recovery code',
  );
  t.equal((await verifyMfa(app, { mfaToken: second, code: code() })).statusCode, 200, 'a fresh step works');
  nextStep(clock);
});

t.test('raced: one code at two mfaTokens of the same user in parallel, exactly one session (10 rounds)', async (t) => {
  for (let round = 1; round <= 10; round++) {
    nextStep(clock);
    const tokens = await Promise.all([startMfaLogin(app, alice.account), startMfaLogin(app, alice.account)]);
    const sessionsBefore = await sessionsOf(alice.account.id);
    const same = code();
    const responses = await Promise.all(tokens.map((mfaToken) => verifyMfa(app, { mfaToken, code: same })));
    t.strictSame(statuses(responses), ['200', '401 MFA_CODE_INVALID'], `round ${round}: one 200, one replay`);
    t.equal(await sessionsOf(alice.account.id), sessionsBefore + 1, `round ${round}: one session opened`);
  }
  nextStep(clock);
});

t.test('raced: the right code twice at one mfaToken, exactly one session', async (t) => {
  const mfaToken = await startMfaLogin(app, alice.account);
  const sessionsBefore = await sessionsOf(alice.account.id);
  const responses = await Promise.all([
    verifyMfa(app, { mfaToken, code: code() }),
    verifyMfa(app, { mfaToken, code: codeNow(aliceTotp.secret, clock, 1) }),
  ]);
  t.equal(responses.filter((response) => response.statusCode === 200).length, 1, `one 200 (${statuses(responses)})`);
  t.equal(codeOf(responses.find((response) => response.statusCode !== 200) as Response), 'MFA_TOKEN_INVALID');
  t.equal(await sessionsOf(alice.account.id), sessionsBefore + 1);
  nextStep(clock);
  nextStep(clock);
});

t.test('five wrong codes kill the mfaToken; each writes mfa_failed', async (t) => {
  const before = await eventsOf(app, alice.account.id, 'mfa_failed');
  const failedBefore = before.length;
  const countedBefore = before.map((event) => (event.details as { failures: number }).failures);
  const mfaToken = await startMfaLogin(app, alice.account);
  for (let attempt = 1; attempt <= 5; attempt++) {
    assertError(t, await verifyMfa(app, { mfaToken, code: wrong() }), 401, 'MFA_CODE_INVALID', `wrong code ${attempt}`);
  }
  const failed = await eventsOf(app, alice.account.id, 'mfa_failed');
  t.equal(failed.length, failedBefore + 5, 'five mfa_failed events');
  // Events come back unordered: compare how often each failure count was recorded, before and after.
  const wanted = histogram(countedBefore);
  for (const failures of [1, 2, 3, 4, 5]) wanted[failures] = (wanted[failures] ?? 0) + 1;
  t.strictSame(
    histogram(failed.map((event) => (event.details as { failures: number }).failures)),
    wanted,
    'one event for each of failures 1 to 5',
  );
  assertError(t, await verifyMfa(app, { mfaToken, code: code() }), 401, 'MFA_TOKEN_INVALID', 'sixth, right code');
  assertError(
    t,
    await verifyMfa(app, { mfaToken, recoveryCode: aliceTotp.recoveryCodes[9] ?? '' }),
    401,
    'MFA_TOKEN_INVALID',
    'nor a recovery code',
  );
  t.equal((await eventsOf(app, alice.account.id, 'mfa_failed')).length, failedBefore + 5, 'a dead token writes none');

  // The boundary: four wrong codes leave the token alive (with wrong recovery codes counting the same).
  const survivor = await startMfaLogin(app, alice.account);
  for (let attempt = 1; attempt <= 2; attempt++) {
    assertError(t, await verifyMfa(app, { mfaToken: survivor, code: wrong() }), 401, 'MFA_CODE_INVALID');
    assertError(t, await verifyMfa(app, { mfaToken: survivor, recoveryCode: 'aaaaa-aaaaa' }), 401, 'MFA_CODE_INVALID');
  }
  t.equal((await verifyMfa(app, { mfaToken: survivor, code: code() })).statusCode, 200, 'four wrong, then right: 200');
  nextStep(clock);
});

t.test('parallel wrong codes at one mfaToken: never more than five are judged', async (t) => {
  const failedBefore = (await eventsOf(app, alice.account.id, 'mfa_failed')).length;
  const mfaToken = await startMfaLogin(app, alice.account);
  const responses = await Promise.all(Array.from({ length: 9 }, () => verifyMfa(app, { mfaToken, code: wrong() })));
  const seen = statuses(responses);
  t.equal(seen.filter((status) => status === '401 MFA_CODE_INVALID').length, 5, `five judged (${seen.join(', ')})`);
  t.equal(seen.filter((status) => status === '401 MFA_TOKEN_INVALID').length, 4, 'the rest find it dead');
  t.equal((await eventsOf(app, alice.account.id, 'mfa_failed')).length, failedBefore + 5);
  assertError(t, await verifyMfa(app, { mfaToken, code: code() }), 401, 'MFA_TOKEN_INVALID');
});

t.test('the mfaToken lives 300 s', async (t) => {
  const early = await startMfaLogin(app, alice.account);
  const late = await startMfaLogin(app, alice.account);
  clock.advance(299_000);
  t.equal((await verifyMfa(app, { mfaToken: early, code: code() })).statusCode, 200, 'at 299 s: accepted');
  clock.advance(1000);
  // A valid, unused code (the next step's): the token, not the code, is what is refused.
  assertError(
    t,
    await verifyMfa(app, { mfaToken: late, code: codeNow(aliceTotp.secret, clock, 1) }),
    401,
    'MFA_TOKEN_INVALID',
    'at 300 s',
  );
  nextStep(clock);
  nextStep(clock);
});

t.test('unknown or malformed mfaTokens; malformed bodies', async (t) => {
  for (const mfaToken of ['x', 'A'.repeat(43), 'not a token at all', 'A'.repeat(512)]) {
    assertError(t, await verifyMfa(app, { mfaToken, code: code() }), 401, 'MFA_TOKEN_INVALID', mfaToken.slice(0, 20));
  }
  const mfaToken = await startMfaLogin(app, alice.account);
  for (const payload of [
    { mfaToken },
    { mfaToken, code: code(), recoveryCode: aliceTotp.recoveryCodes[9] },
    { mfaToken, code: code(), extra: 1 },
    { mfaToken, code: code(), transport: 'carrier-pigeon' },
    { code: code() },
    { mfaToken, code: '' },
  ]) {
    const response = await app.inject({ method: 'POST', url: '/auth/mfa/verify', payload });
    assertError(t, response, 400, 'VALIDATION_FAILED', JSON.stringify(Object.keys(payload)));
  }
  t.equal((await verifyMfa(app, { mfaToken, code: code() })).statusCode, 200, 'none of that hurt the token');
  nextStep(clock);
});

t.test('a password change between the two steps kills the mfaToken', async (t) => {
  const bob = await registerAndLogin(app);
  const bobTotp = await enrolTotp(app, clock, bob.accessToken, bob.account.password);
  const mfaToken = await startMfaLogin(app, bob.account);
  const newPassword = 'a brand new passphrase 2024';
  const changed = await app.inject({
    method: 'POST',
    url: '/auth/password',
    headers: bearer(bob.accessToken),
    payload: { currentPassword: bob.account.password, newPassword },
  });
  t.equal(changed.statusCode, 204, 'password changed (from the session opened before TOTP)');
  assertError(t, await verifyMfa(app, { mfaToken, code: codeNow(bobTotp.secret, clock) }), 401, 'MFA_TOKEN_INVALID');
  const renamed: Account = { ...bob.account, password: newPassword };
  const fresh = await startMfaLogin(app, renamed);
  const ok = await verifyMfa(app, { mfaToken: fresh, code: codeNow(bobTotp.secret, clock) });
  t.equal(ok.statusCode, 200, 'the code was not spent: a login with the new password takes it');
  assertError(t, await loginRequest(app, bob.account.email, bob.account.password), 401, 'INVALID_CREDENTIALS');
});
