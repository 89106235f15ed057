// Signing in with a passkey through the API, with a software authenticator (real ES256 signatures): the options,
// the session (amr pop+mfa, kept by refresh; TOTP or not), both transports, and every way an assertion can fail:
// replay (also concurrent), expiry, unknown or removed credential, wrong origin, RP ID, user handle or signature,
// missing user verification, and a signature counter that did not move forward.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { passkeys, users, webauthnChallenges } from '../../../src/db/schema.js';
import { totpCode, totpStep } from '../../../src/modules/mfa/totp.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  bearer,
  COOKIES,
  claimsOf,
  cookiesOf,
  eventsOf,
  type LoggedIn,
  me,
  refresh,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';
import { FLAGS, type RequestOptions, SoftAuthenticator } from './authenticator.js';

const ORIGIN = 'http://auth.test';
const RP_ID = 'auth.test';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const clock = new TestClock();
const { app } = await buildTestApp(t, { clock });

/** A user with one passkey on a software authenticator. */
async function withPasskey(): Promise<{ session: LoggedIn; authenticator: SoftAuthenticator; passkeyId: string }> {
  const session = await registerAndLogin(app);
  const authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
  const options = await app.inject({
    method: 'POST',
    url: '/auth/passkeys/register/options',
    headers: bearer(session.accessToken),
    payload: {},
  });
  const added = await app.inject({
    method: 'POST',
    url: '/auth/passkeys/register',
    headers: bearer(session.accessToken),
    payload: { response: authenticator.create(options.json()) },
  });
  if (added.statusCode !== 201) throw new Error(`register: ${added.statusCode} ${added.body}`);
  return { session, authenticator, passkeyId: added.json().passkey.id };
}

async function loginOptions(): Promise<{ challengeId: string; options: RequestOptions & Record<string, unknown> }> {
  const response = await app.inject({ method: 'POST', url: '/auth/passkeys/login/options', payload: {} });
  if (response.statusCode !== 200) throw new Error(`login options: ${response.statusCode} ${response.body}`);
  return response.json();
}

function signIn(challengeId: string, response: unknown, transport?: 'body' | 'cookie') {
  return app.inject({
    method: 'POST',
    url: '/auth/passkeys/login',
    payload: transport ? { challengeId, response, transport } : { challengeId, response },
  });
}

t.test('login options: a stored challenge for any discoverable credential, user verification required', async (t) => {
  const response = await app.inject({ method: 'POST', url: '/auth/passkeys/login/options', payload: {} });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['cache-control'], 'no-store');
  const body = response.json();
  t.match(body, {
    challengeId: UUID,
    options: { challenge: /^[A-Za-z0-9_-]{43,}$/, rpId: RP_ID, userVerification: 'required', timeout: 300_000 },
  });
  t.same(body.options.allowCredentials ?? [], [], 'no allowCredentials: discoverable credentials');
  const [row] = await app.db.select().from(webauthnChallenges).where(eq(webauthnChallenges.id, body.challengeId));
  t.match(row, { purpose: 'login', userId: null, challenge: body.options.challenge, usedAt: null });
  t.equal(row?.expiresAt.getTime(), clock.now() + 300_000);
  assertError(
    t,
    await app.inject({ method: 'POST', url: '/auth/passkeys/login/options', payload: { email: 'a@b.c' } }),
    400,
    'VALIDATION_FAILED',
  );
});

t.test('a passkey signs in: tokens with amr pop+mfa, events, counter and last use recorded', async (t) => {
  const { session, authenticator, passkeyId } = await withPasskey();
  const { challengeId, options } = await loginOptions();
  clock.advance(1000);
  const response = await signIn(challengeId, authenticator.get(options));
  t.equal(response.statusCode, 200, response.body);
  t.equal(response.headers['cache-control'], 'no-store');
  const body = response.json();
  t.match(body, { accessToken: String, refreshToken: String, tokenType: 'Bearer', user: { id: session.account.id } });
  t.notOk(response.headers['set-cookie'], 'no cookies with the body transport');
  const claims = claimsOf(body.accessToken);
  t.same(claims.amr, ['pop', 'mfa'], 'amr: pop, mfa');
  t.equal(claims.sub, session.account.id);
  t.same((await sessionRow(app, claims.sid))?.amr, ['pop', 'mfa'], 'the session keeps it');
  t.equal((await me(app, body.accessToken)).statusCode, 200, 'the access token works');

  clock.advance(1000);
  const refreshed = await refresh(app, body.refreshToken);
  t.equal(refreshed.statusCode, 200);
  t.same(claimsOf(refreshed.json().accessToken).amr, ['pop', 'mfa'], 'refresh keeps amr');

  const [row] = await app.db.select().from(passkeys).where(eq(passkeys.id, passkeyId));
  t.equal(row?.counter, 1, 'the counter is stored');
  t.equal(row?.lastUsedAt?.getTime(), clock.now() - 1000, 'lastUsedAt');
  const list = await app.inject({ method: 'GET', url: '/auth/passkeys', headers: bearer(session.accessToken) });
  t.equal(list.json().items[0].lastUsedAt, row?.lastUsedAt?.toISOString(), 'shown in the list');
  t.match(await eventsOf(app, session.account.id, 'passkey_login'), [
    { details: { passkeyId, sessionId: claims.sid } },
  ]);
  const logins = await eventsOf(app, session.account.id, 'login_succeeded');
  t.match(logins.at(-1), { details: { sessionId: claims.sid, method: 'passkey' } }, 'login_succeeded too');

  // And again: the counter moves on.
  const again = await loginOptions();
  t.equal((await signIn(again.challengeId, authenticator.get(again.options))).statusCode, 200);
  const [after] = await app.db.select().from(passkeys).where(eq(passkeys.id, passkeyId));
  t.equal(after?.counter, 2);
});

t.test('the cookie transport sets the session cookies and returns the csrf value, no tokens', async (t) => {
  const { authenticator } = await withPasskey();
  const { challengeId, options } = await loginOptions();
  const response = await signIn(challengeId, authenticator.get(options), 'cookie');
  t.equal(response.statusCode, 200);
  const body = response.json();
  t.notOk(body.accessToken);
  t.notOk(body.refreshToken);
  const cookies = cookiesOf(response);
  t.ok(cookies[COOKIES.access]?.httpOnly, 'access cookie');
  t.ok(cookies[COOKIES.refresh]?.httpOnly, 'refresh cookie');
  t.equal(body.csrfToken, cookies[COOKIES.csrf]?.value, 'csrfToken is the csrf cookie');
  t.same(claimsOf(cookies[COOKIES.access]?.value ?? '').amr, ['pop', 'mfa']);
});

t.test('with TOTP enabled, a passkey still signs in on its own', async (t) => {
  const { session, authenticator } = await withPasskey();
  const setup = await app.inject({
    method: 'POST',
    url: '/auth/mfa/totp/setup',
    headers: bearer(session.accessToken),
    payload: { currentPassword: session.account.password },
  });
  t.equal(setup.statusCode, 200, setup.body);
  const enable = await app.inject({
    method: 'POST',
    url: '/auth/mfa/totp/enable',
    headers: bearer(session.accessToken),
    payload: { code: totpCode(setup.json().secret, totpStep(clock.now())) },
  });
  t.equal(enable.statusCode, 200, enable.body);
  const password = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: session.account.email, password: session.account.password },
  });
  t.equal(password.json().mfaRequired, true, 'a password alone asks for the second step');
  const { challengeId, options } = await loginOptions();
  const response = await signIn(challengeId, authenticator.get(options));
  t.equal(response.statusCode, 200, response.body);
  t.same(claimsOf(response.json().accessToken).amr, ['pop', 'mfa']);
  t.equal(response.json().user.mfaEnabled, true);
});

t.test('a challenge works once: a replay, even concurrent, is 401', async (t) => {
  const { authenticator } = await withPasskey();
  const { challengeId, options } = await loginOptions();
  const assertion = authenticator.get(options);
  t.equal((await signIn(challengeId, assertion)).statusCode, 200);
  assertError(t, await signIn(challengeId, assertion), 401, 'PASSKEY_INVALID', 'the same assertion again');
  const next = await loginOptions();
  assertError(t, await signIn(next.challengeId, assertion), 401, 'PASSKEY_INVALID', 'with another challenge id');
  t.equal(
    (await signIn(next.challengeId, authenticator.get(next.options))).statusCode,
    401,
    'and that challenge was spent by the failure',
  );

  const race = await loginOptions();
  const raced = authenticator.get(race.options);
  const answers = await Promise.all(Array.from({ length: 5 }, () => signIn(race.challengeId, raced)));
  t.same(
    answers.map((answer) => answer.statusCode).sort(),
    [200, 401, 401, 401, 401],
    'five at once: exactly one session',
  );
});

t.test('a challenge lives 300 s; ids that are no login challenge are refused', async (t) => {
  const { session, authenticator } = await withPasskey();
  const late = await loginOptions();
  clock.advance(300_000);
  assertError(t, await signIn(late.challengeId, authenticator.get(late.options)), 401, 'PASSKEY_INVALID', 'expired');
  const inTime = await loginOptions();
  clock.advance(299_000);
  t.equal((await signIn(inTime.challengeId, authenticator.get(inTime.options))).statusCode, 200, 'at 299 s');

  const unknown = await loginOptions();
  assertError(
    t,
    await signIn('00000000-0000-4000-8000-000000000000', authenticator.get(unknown.options)),
    401,
    'PASSKEY_INVALID',
    'an unknown challenge id',
  );
  const registration = await app.inject({
    method: 'POST',
    url: '/auth/passkeys/register/options',
    headers: bearer(session.accessToken),
    payload: {},
  });
  const [row] = await app.db
    .select()
    .from(webauthnChallenges)
    .where(eq(webauthnChallenges.challenge, registration.json().challenge));
  assertError(
    t,
    await signIn(row?.id ?? '', authenticator.get({ challenge: registration.json().challenge })),
    401,
    'PASSKEY_INVALID',
    'a registration challenge',
  );
  assertError(
    t,
    await signIn('not-a-uuid', authenticator.get(unknown.options)),
    400,
    'VALIDATION_FAILED',
    'a malformed challenge id',
  );
});

t.test('every wrong assertion is 401 PASSKEY_INVALID, and a failure is recorded', async (t) => {
  const { session, authenticator } = await withPasskey();
  const stranger = new SoftAuthenticator(ORIGIN, RP_ID);
  stranger.userHandle = authenticator.userHandle;
  const failures = (await eventsOf(app, session.account.id, 'login_failed')).length;
  const cases: [string, (options: RequestOptions) => unknown][] = [
    ['an unknown credential', (o) => stranger.get(o)],
    ['wrong origin', (o) => authenticator.get(o, { origin: 'http://evil.test' })],
    ['an origin on another port', (o) => authenticator.get(o, { origin: 'http://auth.test:8080' })],
    ['wrong RP ID', (o) => authenticator.get(o, { rpId: 'evil.test' })],
    ['a bad signature', (o) => authenticator.get(o, { badSignature: true })],
    ['no user verification', (o) => authenticator.get(o, { flags: FLAGS.UP })],
    ['a registration type', (o) => authenticator.get(o, { type: 'webauthn.create' })],
    ['another challenge signed', (o) => authenticator.get(o, { challenge: 'c29tZXRoaW5nIGVsc2UgZW50aXJlbHk' })],
    ['another user handle', (o) => authenticator.get(o, { userHandle: Buffer.alloc(16, 7).toString('base64url') })],
    [
      'garbage strings',
      (o) => {
        const real = authenticator.get(o);
        return { ...real, response: { ...real.response, authenticatorData: 'x', signature: '!!' } };
      },
    ],
    [
      'clientDataJSON that is not JSON',
      (o) => {
        const real = authenticator.get(o);
        return { ...real, response: { ...real.response, clientDataJSON: 'garbage' } };
      },
    ],
  ];
  for (const [label, make] of cases) {
    const { challengeId, options } = await loginOptions();
    assertError(t, await signIn(challengeId, make(options)), 401, 'PASSKEY_INVALID', label);
  }
  const recorded = await eventsOf(app, session.account.id, 'login_failed');
  t.equal(recorded.length - failures, cases.length - 1, 'login_failed for each try with a known passkey');
  t.match(recorded.at(-1)?.details, { method: 'passkey', reason: 'passkey_invalid' });

  // Without a user handle (some authenticators omit it), the credential alone decides.
  const { challengeId, options } = await loginOptions();
  t.equal((await signIn(challengeId, authenticator.get(options, { userHandle: null }))).statusCode, 200);

  assertError(
    t,
    await signIn(challengeId, { id: authenticator.id }),
    400,
    'VALIDATION_FAILED',
    'members missing: the shape is checked first',
  );
});

t.test('a signature counter that did not move forward is refused', async (t) => {
  const { authenticator, passkeyId } = await withPasskey();
  let { challengeId, options } = await loginOptions();
  t.equal((await signIn(challengeId, authenticator.get(options, { counter: 5 }))).statusCode, 200, 'counter 5');
  for (const [counter, label] of [
    [4, 'backwards'],
    [5, 'the same'],
    [0, 'back to zero'],
  ] as const) {
    ({ challengeId, options } = await loginOptions());
    assertError(t, await signIn(challengeId, authenticator.get(options, { counter })), 401, 'PASSKEY_INVALID', label);
  }
  ({ challengeId, options } = await loginOptions());
  t.equal((await signIn(challengeId, authenticator.get(options, { counter: 9 }))).statusCode, 200, 'forward again');
  const [row] = await app.db.select().from(passkeys).where(eq(passkeys.id, passkeyId));
  t.equal(row?.counter, 9);

  // An authenticator that keeps no counter (always 0, as many passkeys do) signs in every time.
  const { authenticator: uncounted } = await withPasskey();
  for (const round of [1, 2]) {
    ({ challengeId, options } = await loginOptions());
    t.equal(
      (await signIn(challengeId, uncounted.get(options, { counter: 0 }))).statusCode,
      200,
      `counter 0, round ${round}`,
    );
  }
});

t.test('a removed passkey, or one of a deleted user, signs in no more', async (t) => {
  const { session, authenticator, passkeyId } = await withPasskey();
  const removed = await app.inject({
    method: 'DELETE',
    url: `/auth/passkeys/${passkeyId}`,
    headers: bearer(session.accessToken),
  });
  t.equal(removed.statusCode, 204);
  let { challengeId, options } = await loginOptions();
  assertError(t, await signIn(challengeId, authenticator.get(options)), 401, 'PASSKEY_INVALID', 'removed');

  const other = await withPasskey();
  await app.db.delete(users).where(eq(users.id, other.session.account.id));
  ({ challengeId, options } = await loginOptions());
  assertError(t, await signIn(challengeId, other.authenticator.get(options)), 401, 'PASSKEY_INVALID', 'user deleted');
});
