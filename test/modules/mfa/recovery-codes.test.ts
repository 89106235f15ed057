// Recovery codes at the login's second step: each works once (raced too), for its own user only, typed in any case
// with or without its hyphen; a used one is MFA_CODE_INVALID; they are stored as keyed hashes, never in the clear.
import { eq, isNotNull } from 'drizzle-orm';
import t from 'tap';
import { recoveryCodes } from '../../../src/db/schema.js';
import { sha256 } from '../../../src/lib/ids.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  claimsOf,
  codeOf,
  eventsOf,
  type LoggedIn,
  me,
  registerAndLogin,
} from '../../helpers/session-flow.js';
import {
  codeNow,
  type Enrolled,
  enrolTotp,
  startMfaLogin,
  stepAlignedClock,
  verifyMfa,
} from '../../helpers/totp-flow.js';

const clock = stepAlignedClock(TestClock);
const { app } = await buildTestApp(t, { clock, env: { EMAIL_VERIFICATION: 'off', ACCESS_TOKEN_TTL: '86400' } });

const carol: LoggedIn = await registerAndLogin(app);
const carolTotp: Enrolled = await enrolTotp(app, clock, carol.accessToken, carol.account.password);
const dave: LoggedIn = await registerAndLogin(app);
const daveTotp: Enrolled = await enrolTotp(app, clock, dave.accessToken, dave.account.password);
const codes = carolTotp.recoveryCodes;
const at = (index: number) => codes[index] ?? '';

const usedRows = (userId: string) =>
  app.db
    .select()
    .from(recoveryCodes)
    .where(eq(recoveryCodes.userId, userId))
    .then((rows) => rows.filter((row) => row.usedAt !== null));

t.test('stored as keyed hashes: no code appears in recovery_codes, in any form', async (t) => {
  const rows = await app.db.select().from(recoveryCodes);
  t.equal(rows.filter((row) => row.userId === carol.account.id).length, 10, 'ten rows for the user');
  const table = JSON.stringify(rows).toLowerCase();
  for (const code of [...codes, ...daveTotp.recoveryCodes]) {
    const bare = code.replace('-', '');
    t.notOk(table.includes(bare) || table.includes(code), `${code} is not stored`);
    t.notOk(
      rows.some((row) => row.codeHash === sha256(code) || row.codeHash === sha256(bare)),
      `${code}: not an unkeyed SHA-256 either`,
    );
  }
  t.equal(new Set(rows.map((row) => row.codeHash)).size, rows.length, 'distinct hashes');
});

t.test('a recovery code logs in once, with amr pwd+otp+mfa, and writes recovery_code_used', async (t) => {
  const mfaToken = await startMfaLogin(app, carol.account);
  const response = await verifyMfa(app, { mfaToken, recoveryCode: at(0) });
  t.equal(response.statusCode, 200);
  const body = response.json();
  t.match(body, { tokenType: 'Bearer', accessToken: String, refreshToken: String, user: { id: carol.account.id } });
  t.strictSame(claimsOf(body.accessToken).amr, ['pwd', 'otp', 'mfa']);
  t.equal((await me(app, body.accessToken)).statusCode, 200);
  t.equal((await eventsOf(app, carol.account.id, 'recovery_code_used')).length, 1, 'recovery_code_used');
  t.equal((await usedRows(carol.account.id)).length, 1, 'one row marked used');

  const again = await startMfaLogin(app, carol.account);
  const failedBefore = (await eventsOf(app, carol.account.id, 'mfa_failed')).length;
  assertError(t, await verifyMfa(app, { mfaToken: again, recoveryCode: at(0) }), 401, 'MFA_CODE_INVALID', 'used');
  assertError(
    t,
    await verifyMfa(app, { mfaToken: again, recoveryCode: at(0).toUpperCase() }),
    401,
    'MFA_CODE_INVALID',
    'used, in another form',
  );
  const failed = await eventsOf(app, carol.account.id, 'mfa_failed');
  t.equal(failed.length, failedBefore + 2, 'each a failed second step');
  t.ok(
    failed.every((event) => (event.details as { method: string }).method === 'recovery_code'),
    'naming the method',
  );
  t.equal((await eventsOf(app, carol.account.id, 'recovery_code_used')).length, 1, 'no second use recorded');
  // The TOTP step was not spent by the recovery code: the current code still works.
  t.equal((await verifyMfa(app, { mfaToken: again, code: codeNow(carolTotp.secret, clock) })).statusCode, 200);
  clock.advance(30_000);
});

t.test('typed back in upper case or without the hyphen', async (t) => {
  for (const [index, typed] of [
    [1, at(1).toUpperCase()],
    [2, at(2).replace('-', '')],
    [3, at(3).replace('-', '').toUpperCase()],
  ] as const) {
    const mfaToken = await startMfaLogin(app, carol.account);
    t.equal((await verifyMfa(app, { mfaToken, recoveryCode: typed })).statusCode, 200, `${typed} accepted`);
    const next = await startMfaLogin(app, carol.account);
    assertError(t, await verifyMfa(app, { mfaToken: next, recoveryCode: at(index) }), 401, 'MFA_CODE_INVALID', 'once');
  }
  t.equal((await usedRows(carol.account.id)).length, 4, 'four used so far');
});

t.test('only the right kind, for the right user', async (t) => {
  const mfaToken = await startMfaLogin(app, carol.account);
  assertError(
    t,
    await verifyMfa(app, { mfaToken, recoveryCode: daveTotp.recoveryCodes[0] ?? '' }),
    401,
    'MFA_CODE_INVALID',
    "another user's recovery code",
  );
  assertError(t, await verifyMfa(app, { mfaToken, code: at(4) }), 401, 'MFA_CODE_INVALID', 'as a TOTP code');
  assertError(
    t,
    await verifyMfa(app, { mfaToken, recoveryCode: codeNow(carolTotp.secret, clock) }),
    401,
    'MFA_CODE_INVALID',
    'a TOTP code as a recovery code',
  );
  assertError(t, await verifyMfa(app, { mfaToken, recoveryCode: `${at(4)}x` }), 401, 'MFA_CODE_INVALID', 'one more');
  t.equal((await usedRows(carol.account.id)).length, 4, 'nothing was used');
  t.equal((await usedRows(dave.account.id)).length, 0, "dave's codes untouched");
  // Dave's code still works for Dave.
  const daves = await startMfaLogin(app, dave.account);
  t.equal((await verifyMfa(app, { mfaToken: daves, recoveryCode: daveTotp.recoveryCodes[0] ?? '' })).statusCode, 200);
});

t.test('raced: one recovery code at two mfaTokens, exactly one session', async (t) => {
  for (const index of [5, 6, 7]) {
    const tokens = await Promise.all([startMfaLogin(app, carol.account), startMfaLogin(app, carol.account)]);
    const responses = await Promise.all(
      tokens.map((mfaToken) => verifyMfa(app, { mfaToken, recoveryCode: at(index) })),
    );
    t.strictSame(
      responses.map((response) => `${response.statusCode} ${codeOf(response) ?? ''}`.trim()).sort(),
      ['200', '401 MFA_CODE_INVALID'],
      `code ${index}: one 200`,
    );
  }
  const used = await app.db.select().from(recoveryCodes).where(isNotNull(recoveryCodes.usedAt));
  t.equal(used.filter((row) => row.userId === carol.account.id).length, 7, 'each used once');
  t.equal((await eventsOf(app, carol.account.id, 'recovery_code_used')).length, 7);
});
