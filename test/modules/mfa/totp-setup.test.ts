// TOTP enrolment through the routes: setup (password first, a sealed secret shown once), enable (a code of the pending
// secret, which counts as used; ten recovery codes), disable and recovery-code regeneration (password and code).
import { eq } from 'drizzle-orm';
import t from 'tap';
import { recoveryCodes, totpFactors } from '../../../src/db/schema.js';
import { open } from '../../../src/lib/sealed.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  type Account,
  assertError,
  bearer,
  COOKIES,
  claimsOf,
  eventsOf,
  type LoggedIn,
  login,
  loginRequest,
  loginWithCookies,
  me,
  registerAndLogin,
} from '../../helpers/session-flow.js';
import {
  codeNow,
  disableTotp,
  enableTotp,
  enrolTotp,
  nextStep,
  regenerateRecoveryCodes,
  setupTotp,
  startMfaLogin,
  stepAlignedClock,
  verifyMfa,
  wrongCodeNow,
} from '../../helpers/totp-flow.js';

const clock = stepAlignedClock(TestClock);
const { app } = await buildTestApp(t, {
  clock,
  // Long enough for the clock's many 30-second steps below.
  env: { ACCESS_TOKEN_TTL: '86400', EMAIL_VERIFICATION: 'off' },
});

const factorOf = async (userId: string) =>
  (await app.db.select().from(totpFactors).where(eq(totpFactors.userId, userId)))[0];
const recoveryRowsOf = (userId: string) => app.db.select().from(recoveryCodes).where(eq(recoveryCodes.userId, userId));
const mfaEnabledOf = async (session: LoggedIn) => (await me(app, session.accessToken)).json().user.mfaEnabled;

/** Logs in through both steps with a fresh code; returns the token response's body. */
async function loginWithTotp(account: Account, secret: string) {
  nextStep(clock);
  const mfaToken = await startMfaLogin(app, account);
  const response = await verifyMfa(app, { mfaToken, code: codeNow(secret, clock) });
  if (response.statusCode !== 200) throw new Error(`verify failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

t.test('setup: the current password first, then a new secret, sealed at rest and shown once', async (t) => {
  const session = await registerAndLogin(app);
  const { account } = session;
  const bystander = await registerAndLogin(app);

  assertError(t, await setupTotp(app, session.accessToken, 'not the password'), 401, 'INVALID_CREDENTIALS');
  t.notOk(await factorOf(account.id), 'a wrong password creates nothing');
  const anonymous = await app.inject({
    method: 'POST',
    url: '/auth/mfa/totp/setup',
    payload: { currentPassword: account.password },
  });
  assertError(t, anonymous, 401, 'TOKEN_MISSING', 'no access token');
  const cookies = await loginWithCookies(app, bystander.account);
  const noCsrf = await app.inject({
    method: 'POST',
    url: '/auth/mfa/totp/setup',
    cookies: { [COOKIES.access]: cookies.access },
    payload: { currentPassword: account.password },
  });
  assertError(t, noCsrf, 403, 'CSRF_FAILED', 'cookie-authenticated without X-CSRF-Token');

  const first = await setupTotp(app, session.accessToken, account.password);
  t.equal(first.statusCode, 200);
  t.equal(first.headers['cache-control'], 'no-store', 'the secret is not cached');
  const { secret, otpauthUrl } = first.json();
  t.strictSame(Object.keys(first.json()).sort(), ['otpauthUrl', 'secret'], 'exactly the secret and its URL');
  t.match(secret, /^[A-Z2-7]{32}$/, 'base32, 160 bits');
  const url = new URL(otpauthUrl);
  t.equal(`${url.protocol}//${url.host}`, 'otpauth://totp', 'an otpauth TOTP URL');
  t.equal(url.searchParams.get('secret'), secret, 'holding the secret');
  t.equal(url.searchParams.get('issuer'), 'auth.test', "the issuer's host");
  t.match(decodeURIComponent(url.pathname), account.email, "and the account's email");

  // At rest: sealed under DATA_ENCRYPTION_KEY, bound to the user.
  const row = await factorOf(account.id);
  t.ok(row, 'a pending factor');
  t.equal(row?.enabledAt, null, 'not enabled yet');
  const sealed = row?.secretSealed ?? '';
  t.notOk(sealed.includes(secret), 'secret_sealed does not hold the base32 secret');
  t.notOk(sealed.toUpperCase().includes(secret), 'in any case');
  t.equal(open(app.secrets.dataEncryption, sealed, account.id), secret, 'it opens to the secret with the key');
  t.throws(() => open(app.secrets.dataEncryption, sealed, bystander.account.id), "not as another user's");

  const meBody = await me(app, session.accessToken);
  t.equal(meBody.json().user.mfaEnabled, false, 'GET /users/me: not enabled until a code confirms it');
  t.notOk(meBody.body.includes(secret), 'and the secret is not there');

  // A second setup replaces the pending secret: the first one's codes stop working.
  const second = await setupTotp(app, session.accessToken, account.password);
  t.equal(second.statusCode, 200);
  const replacement = second.json().secret;
  t.not(replacement, secret, 'a new secret');
  t.equal(open(app.secrets.dataEncryption, (await factorOf(account.id))?.secretSealed ?? '', account.id), replacement);
  assertError(t, await enableTotp(app, session.accessToken, codeNow(secret, clock)), 401, 'MFA_CODE_INVALID', 'old');
  t.equal(await mfaEnabledOf(session), false, 'still not enabled');

  // Enable: wrong codes are MFA_CODE_INVALID, whatever their form.
  for (const bad of [wrongCodeNow(replacement, clock), 'abcdef', '12345', '1234567', codeNow(replacement, clock, 2)]) {
    assertError(t, await enableTotp(app, session.accessToken, bad), 401, 'MFA_CODE_INVALID', `enable with ${bad}`);
  }
  t.equal(await mfaEnabledOf(session), false, 'wrong codes enable nothing');
  t.equal((await eventsOf(app, account.id, 'mfa_enabled')).length, 0);

  const enablingCode = codeNow(replacement, clock);
  const enabled = await enableTotp(app, session.accessToken, enablingCode);
  t.equal(enabled.statusCode, 200, 'the right code enables');
  t.equal(enabled.headers['cache-control'], 'no-store');
  t.strictSame(Object.keys(enabled.json()), ['recoveryCodes']);
  const codes: string[] = enabled.json().recoveryCodes;
  t.equal(codes.length, 10, 'ten recovery codes');
  t.equal(new Set(codes).size, 10, 'all distinct');
  for (const code of codes) t.match(code, /^[0-9a-z]{5}-[0-9a-z]{5}$/, 'xxxxx-xxxxx');
  t.equal((await eventsOf(app, account.id, 'mfa_enabled')).length, 1, 'event mfa_enabled');
  t.equal(await mfaEnabledOf(session), true, 'GET /users/me: mfaEnabled');
  t.equal((await recoveryRowsOf(account.id)).length, 10, 'ten stored codes');
  t.ok((await factorOf(account.id))?.enabledAt, 'enabled_at set');
  t.equal((await me(app, session.accessToken)).statusCode, 200, 'enabling ends no session');

  // Enabled: neither setup nor enable may replace the secret.
  const sealedEnabled = (await factorOf(account.id))?.secretSealed;
  assertError(t, await setupTotp(app, session.accessToken, account.password), 400, 'VALIDATION_FAILED', 'setup');
  assertError(t, await enableTotp(app, session.accessToken, codeNow(replacement, clock, 1)), 400, 'VALIDATION_FAILED');
  t.equal((await factorOf(account.id))?.secretSealed, sealedEnabled, 'the enabled secret is untouched');

  // The enabling code counts as used: the same step's code is refused at the login's second step.
  const mfaToken = await startMfaLogin(app, account);
  assertError(t, await verifyMfa(app, { mfaToken, code: enablingCode }), 401, 'MFA_CODE_INVALID', 'enabling code');
  const next = await verifyMfa(app, { mfaToken, code: codeNow(replacement, clock, 1) });
  t.equal(next.statusCode, 200, "control: the next step's code works");
});

t.test('a code of an older step than the one that enabled is refused too', async (t) => {
  const session = await registerAndLogin(app);
  const { secret } = (await setupTotp(app, session.accessToken, session.account.password)).json();
  // Enabled with the next step's code (a phone running ahead): the current step's code is now in the past.
  t.equal((await enableTotp(app, session.accessToken, codeNow(secret, clock, 1))).statusCode, 200);
  const mfaToken = await startMfaLogin(app, session.account);
  assertError(t, await verifyMfa(app, { mfaToken, code: codeNow(secret, clock) }), 401, 'MFA_CODE_INVALID');
  assertError(t, await verifyMfa(app, { mfaToken, code: codeNow(secret, clock, 1) }), 401, 'MFA_CODE_INVALID');
  nextStep(clock);
  nextStep(clock);
  t.equal((await verifyMfa(app, { mfaToken, code: codeNow(secret, clock) })).statusCode, 200, 'a later step works');
});

t.test('disable: password and code, then the factor and its recovery codes are gone', async (t) => {
  const session = await registerAndLogin(app);
  const { account } = session;
  const { secret, recoveryCodes: oldCodes } = await enrolTotp(app, clock, session.accessToken, account.password);

  assertError(
    t,
    await disableTotp(app, session.accessToken, {
      currentPassword: account.password,
      code: wrongCodeNow(secret, clock),
    }),
    401,
    'MFA_CODE_INVALID',
    'wrong code',
  );
  assertError(
    t,
    await disableTotp(app, session.accessToken, { currentPassword: 'not the password', code: codeNow(secret, clock) }),
    401,
    'INVALID_CREDENTIALS',
    'wrong password, right code',
  );
  assertError(
    t,
    await disableTotp(app, session.accessToken, { currentPassword: account.password, code: oldCodes[0] ?? '' }),
    401,
    'MFA_CODE_INVALID',
    'a recovery code is not a TOTP code',
  );
  // A code already used (here at a login) cannot disable.
  const used = await loginWithTotp(account, secret);
  t.ok(used.accessToken);
  assertError(
    t,
    await disableTotp(app, session.accessToken, { currentPassword: account.password, code: codeNow(secret, clock) }),
    401,
    'MFA_CODE_INVALID',
    'a used code',
  );
  t.equal(await mfaEnabledOf(session), true, 'none of that disabled anything');
  t.equal((await eventsOf(app, account.id, 'mfa_disabled')).length, 0);

  nextStep(clock);
  const disabled = await disableTotp(app, session.accessToken, {
    currentPassword: account.password,
    code: codeNow(secret, clock),
  });
  t.equal(disabled.statusCode, 204, 'disabled');
  t.equal(disabled.body, '');
  t.equal((await eventsOf(app, account.id, 'mfa_disabled')).length, 1, 'event mfa_disabled');
  t.notOk(await factorOf(account.id), 'the factor is gone');
  t.equal((await recoveryRowsOf(account.id)).length, 0, 'recovery codes dropped');
  t.equal(await mfaEnabledOf(session), false, 'mfaEnabled false');

  const plain = await loginRequest(app, account.email, account.password);
  t.equal(plain.statusCode, 200, 'the login is one step again');
  t.notOk(plain.json().mfaRequired);
  t.strictSame(claimsOf(plain.json().accessToken).amr, ['pwd']);

  nextStep(clock);
  assertError(
    t,
    await disableTotp(app, session.accessToken, { currentPassword: account.password, code: codeNow(secret, clock) }),
    400,
    'VALIDATION_FAILED',
    'disable when not enabled',
  );

  // Enabled again: a new secret, new codes; the dropped codes stay dead.
  const again = await enrolTotp(app, clock, session.accessToken, account.password);
  t.not(again.secret, secret, 'a new secret');
  const mfaToken = await startMfaLogin(app, account);
  assertError(
    t,
    await verifyMfa(app, { mfaToken, recoveryCode: oldCodes[1] ?? '' }),
    401,
    'MFA_CODE_INVALID',
    'a dropped recovery code',
  );
  assertError(
    t,
    await verifyMfa(app, { mfaToken, code: codeNow(secret, clock) }),
    401,
    'MFA_CODE_INVALID',
    'old secret',
  );
  t.equal((await verifyMfa(app, { mfaToken, recoveryCode: again.recoveryCodes[0] ?? '' })).statusCode, 200);
});

t.test('recovery-codes: password and code give a new set; the old set stops working', async (t) => {
  const session = await registerAndLogin(app);
  const { account } = session;
  const { secret, recoveryCodes: oldCodes } = await enrolTotp(app, clock, session.accessToken, account.password);

  assertError(
    t,
    await regenerateRecoveryCodes(app, session.accessToken, {
      currentPassword: 'not the password',
      code: codeNow(secret, clock),
    }),
    401,
    'INVALID_CREDENTIALS',
    'wrong password',
  );
  assertError(
    t,
    await regenerateRecoveryCodes(app, session.accessToken, {
      currentPassword: account.password,
      code: wrongCodeNow(secret, clock),
    }),
    401,
    'MFA_CODE_INVALID',
    'wrong code',
  );
  const rowsBefore = (await recoveryRowsOf(account.id)).map((row) => row.codeHash).sort();

  const response = await regenerateRecoveryCodes(app, session.accessToken, {
    currentPassword: account.password,
    code: codeNow(secret, clock),
  });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['cache-control'], 'no-store');
  const newCodes: string[] = response.json().recoveryCodes;
  t.equal(newCodes.length, 10);
  t.equal(new Set(newCodes).size, 10, 'distinct');
  t.equal(newCodes.filter((code) => oldCodes.includes(code)).length, 0, 'none of the old ones');
  const rowsAfter = await recoveryRowsOf(account.id);
  t.equal(rowsAfter.length, 10, 'exactly ten stored: the old set is gone');
  t.equal(rowsAfter.filter((row) => rowsBefore.includes(row.codeHash)).length, 0, 'no old hash remains');

  // The code used for the regeneration is spent.
  assertError(
    t,
    await regenerateRecoveryCodes(app, session.accessToken, {
      currentPassword: account.password,
      code: codeNow(secret, clock),
    }),
    401,
    'MFA_CODE_INVALID',
    'the same code again',
  );

  const mfaToken = await startMfaLogin(app, account);
  for (const old of oldCodes.slice(0, 3)) {
    assertError(t, await verifyMfa(app, { mfaToken, recoveryCode: old }), 401, 'MFA_CODE_INVALID', `old ${old}`);
  }
  const ok = await verifyMfa(app, { mfaToken, recoveryCode: newCodes[0] ?? '' });
  t.equal(ok.statusCode, 200, 'a new code works');
  t.strictSame(claimsOf(ok.json().accessToken).amr, ['pwd', 'otp', 'mfa']);

  // Regeneration also needs TOTP enabled.
  const plain = await registerAndLogin(app);
  assertError(
    t,
    await regenerateRecoveryCodes(app, plain.accessToken, { currentPassword: plain.account.password, code: '123456' }),
    400,
    'VALIDATION_FAILED',
    'without TOTP',
  );
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(plain.accessToken) })).statusCode, 200);
  t.ok(await login(app, plain.account), 'and its login stays one step');
});
