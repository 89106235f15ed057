// Adding, listing and removing passkeys through the API, with a software authenticator in Node (real ES256
// signatures, attestation `none`): the options' shape, the stored challenge (single use, 300 s, the caller's own),
// every way an attestation can be wrong (401 PASSKEY_INVALID), CSRF with cookies, 404 for another user's passkey,
// and the housekeeping of expired challenges.
import { and, eq } from 'drizzle-orm';
import t from 'tap';
import { passkeys, webauthnChallenges } from '../../../src/db/schema.js';
import { pruneExpired } from '../../../src/modules/sessions/housekeeping.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  bearer,
  eventsOf,
  type LoggedIn,
  loginWithCookies,
  register,
  registerAndLogin,
} from '../../helpers/session-flow.js';
import { type CreationOptions, FLAGS, SoftAuthenticator } from './authenticator.js';

const ORIGIN = 'http://auth.test';
const RP_ID = 'auth.test';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const clock = new TestClock();
const { app } = await buildTestApp(t, { clock });

async function options(session: LoggedIn): Promise<CreationOptions & Record<string, unknown>> {
  const response = await app.inject({
    method: 'POST',
    url: '/auth/passkeys/register/options',
    headers: bearer(session.accessToken),
    payload: {},
  });
  if (response.statusCode !== 200) throw new Error(`options: ${response.statusCode} ${response.body}`);
  return response.json();
}

function finish(session: LoggedIn, response: unknown, name?: string | null) {
  return app.inject({
    method: 'POST',
    url: '/auth/passkeys/register',
    headers: bearer(session.accessToken),
    payload: name === undefined ? { response } : { response, name },
  });
}

t.test('registration options: resident key and user verification required, the challenge stored', async (t) => {
  const session = await registerAndLogin(app);
  const response = await app.inject({
    method: 'POST',
    url: '/auth/passkeys/register/options',
    headers: bearer(session.accessToken),
    payload: {},
  });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['cache-control'], 'no-store');
  const body = response.json();
  t.match(body, {
    rp: { id: RP_ID, name: String },
    user: { id: String, name: session.account.email, displayName: session.account.email },
    challenge: /^[A-Za-z0-9_-]{43,}$/,
    pubKeyCredParams: [{ alg: Number, type: 'public-key' }],
    timeout: 300_000,
    excludeCredentials: [],
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
    attestation: 'none',
  });
  t.equal(
    Buffer.from(body.user.id, 'base64url').toString('hex'),
    session.account.id.replaceAll('-', ''),
    'the user handle is the user id (no email in it)',
  );
  const [row] = await app.db.select().from(webauthnChallenges).where(eq(webauthnChallenges.challenge, body.challenge));
  t.match(row, { purpose: 'register', userId: session.account.id, usedAt: null });
  t.equal(row?.expiresAt.getTime(), clock.now() + 300_000, 'lives 300 s');

  assertError(
    t,
    await app.inject({ method: 'POST', url: '/auth/passkeys/register/options', payload: {} }),
    401,
    'TOKEN_MISSING',
  );
  assertError(
    t,
    await app.inject({
      method: 'POST',
      url: '/auth/passkeys/register/options',
      headers: bearer(session.accessToken),
      payload: { extra: 1 },
    }),
    400,
    'VALIDATION_FAILED',
    'unknown members are refused',
  );
});

t.test('a passkey is added, listed, excluded from the next options, and removed', async (t) => {
  const session = await registerAndLogin(app);
  const authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
  const response = await finish(session, authenticator.create(await options(session)), '  My laptop  ');
  t.equal(response.statusCode, 201, response.body);
  const { passkey } = response.json();
  t.match(passkey, { id: UUID, name: 'My laptop', createdAt: new Date(clock.now()).toISOString(), lastUsedAt: null });
  t.same(Object.keys(passkey).sort(), ['createdAt', 'id', 'lastUsedAt', 'name'], 'nothing else is shown');

  const [row] = await app.db.select().from(passkeys).where(eq(passkeys.id, passkey.id));
  t.equal(row?.credentialId, authenticator.id, 'the credential id, base64url');
  t.same(Buffer.from(row?.publicKey ?? '', 'base64url'), authenticator.coseKey(), 'the COSE public key, base64url');
  t.equal(row?.counter, 0);
  t.same(row?.transports, ['internal']);
  t.equal(row?.userId, session.account.id);
  const added = await eventsOf(app, session.account.id, 'passkey_added');
  t.equal(added.length, 1, 'event passkey_added');
  t.match(added[0]?.details, { passkeyId: passkey.id });

  const next = await options(session);
  t.same(
    next.excludeCredentials,
    [{ id: authenticator.id, type: 'public-key', transports: ['internal'] }],
    "the user's passkeys are excluded",
  );

  // Another, unnamed, a second later (the list is ordered by time, then id).
  clock.advance(1000);
  const second = await finish(session, new SoftAuthenticator(ORIGIN, RP_ID).create(next));
  t.equal(second.statusCode, 201);
  t.equal(second.json().passkey.name, null, 'no name: null');

  const list = await app.inject({ method: 'GET', url: '/auth/passkeys', headers: bearer(session.accessToken) });
  t.equal(list.statusCode, 200);
  t.same(
    list.json().items.map((item: { id: string }) => item.id),
    [second.json().passkey.id, passkey.id],
    'newest first',
  );
  t.equal(list.json().nextCursor, null);
  const page = await app.inject({
    method: 'GET',
    url: '/auth/passkeys?limit=1',
    headers: bearer(session.accessToken),
  });
  t.equal(page.json().items.length, 1);
  const rest = await app.inject({
    method: 'GET',
    url: `/auth/passkeys?limit=1&cursor=${page.json().nextCursor}`,
    headers: bearer(session.accessToken),
  });
  t.equal(rest.json().items[0].id, passkey.id, 'the cursor pages on');

  // Someone else can neither see nor remove them.
  const other = await registerAndLogin(app);
  const theirs = await app.inject({ method: 'GET', url: '/auth/passkeys', headers: bearer(other.accessToken) });
  t.same(theirs.json().items, [], "another user's list is empty");
  assertError(
    t,
    await app.inject({ method: 'DELETE', url: `/auth/passkeys/${passkey.id}`, headers: bearer(other.accessToken) }),
    404,
    'NOT_FOUND',
    "another user's passkey",
  );
  assertError(
    t,
    await app.inject({ method: 'DELETE', url: '/auth/passkeys/not-a-uuid', headers: bearer(session.accessToken) }),
    400,
    'VALIDATION_FAILED',
    'a malformed id',
  );

  const removed = await app.inject({
    method: 'DELETE',
    url: `/auth/passkeys/${passkey.id}`,
    headers: bearer(session.accessToken),
  });
  t.equal(removed.statusCode, 204);
  t.equal(removed.body, '');
  const gone = await eventsOf(app, session.account.id, 'passkey_removed');
  t.match(gone, [{ details: { passkeyId: passkey.id } }], 'event passkey_removed');
  assertError(
    t,
    await app.inject({ method: 'DELETE', url: `/auth/passkeys/${passkey.id}`, headers: bearer(session.accessToken) }),
    404,
    'NOT_FOUND',
    'removed already',
  );
  const after = await app.inject({ method: 'GET', url: '/auth/passkeys', headers: bearer(session.accessToken) });
  t.same(
    after.json().items.map((item: { id: string }) => item.id),
    [second.json().passkey.id],
  );
});

t.test('the challenge works once, for 300 s, for its own user only', async (t) => {
  const session = await registerAndLogin(app);
  const authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
  const attestation = authenticator.create(await options(session));
  t.equal((await finish(session, attestation)).statusCode, 201);
  assertError(t, await finish(session, attestation), 401, 'PASSKEY_INVALID', 'the same attestation again');

  // A wrong answer spends the challenge too.
  const challenge = await options(session);
  const fresh = new SoftAuthenticator(ORIGIN, RP_ID);
  assertError(
    t,
    await finish(session, fresh.create(challenge, { origin: 'http://evil.test' })),
    401,
    'PASSKEY_INVALID',
    'a wrong origin',
  );
  assertError(t, await finish(session, fresh.create(challenge)), 401, 'PASSKEY_INVALID', 'its challenge is spent');

  const late = await options(session);
  clock.advance(300_000);
  assertError(t, await finish(session, fresh.create(late)), 401, 'PASSKEY_INVALID', 'expired after 300 s');
  const inTime = await options(session);
  clock.advance(299_000);
  t.equal((await finish(session, fresh.create(inTime))).statusCode, 201, 'still good at 299 s');

  const other = await registerAndLogin(app);
  assertError(
    t,
    await finish(other, new SoftAuthenticator(ORIGIN, RP_ID).create(await options(session))),
    401,
    'PASSKEY_INVALID',
    "another user's challenge",
  );
  assertError(
    t,
    await finish(
      session,
      new SoftAuthenticator(ORIGIN, RP_ID).create({ ...(await options(session)), challenge: 'AAAA' }),
    ),
    401,
    'PASSKEY_INVALID',
    'a challenge never issued',
  );
});

t.test('every wrong attestation is 401 PASSKEY_INVALID', async (t) => {
  const session = await registerAndLogin(app);
  const cases: [string, (options: CreationOptions) => unknown][] = [
    ['wrong origin', (o) => new SoftAuthenticator('https://auth.test', RP_ID).create(o)],
    ['wrong RP ID', (o) => new SoftAuthenticator(ORIGIN, 'evil.test').create(o)],
    ['no user verification', (o) => new SoftAuthenticator(ORIGIN, RP_ID).create(o, { flags: FLAGS.UP | FLAGS.AT })],
    ['no user presence', (o) => new SoftAuthenticator(ORIGIN, RP_ID).create(o, { flags: FLAGS.UV | FLAGS.AT })],
    ['an assertion type', (o) => new SoftAuthenticator(ORIGIN, RP_ID).create(o, { type: 'webauthn.get' })],
    [
      'garbage strings',
      (o) => {
        const real = new SoftAuthenticator(ORIGIN, RP_ID).create(o);
        return { ...real, response: { ...real.response, attestationObject: 'not-cbor-at-all' } };
      },
    ],
    [
      'clientDataJSON that is not JSON',
      (o) => {
        const real = new SoftAuthenticator(ORIGIN, RP_ID).create(o);
        return { ...real, response: { ...real.response, clientDataJSON: 'garbage' } };
      },
    ],
    [
      'a mismatched credential id',
      (o) => ({ ...new SoftAuthenticator(ORIGIN, RP_ID).create(o), id: 'AAAAAAAAAAAAAAAAAAAAAA', rawId: 'AAAA' }),
    ],
    ['type not public-key', (o) => ({ ...new SoftAuthenticator(ORIGIN, RP_ID).create(o), type: 'password' })],
  ];
  for (const [label, make] of cases) {
    assertError(t, await finish(session, make(await options(session))), 401, 'PASSKEY_INVALID', label);
  }
  const list = await app.inject({ method: 'GET', url: '/auth/passkeys', headers: bearer(session.accessToken) });
  t.same(list.json().items, [], 'none of them was stored');

  // The same authenticator cannot be registered twice, to this user or anyone.
  const authenticator = new SoftAuthenticator(ORIGIN, RP_ID);
  t.equal((await finish(session, authenticator.create(await options(session)))).statusCode, 201);
  const other = await registerAndLogin(app);
  assertError(
    t,
    await finish(other, authenticator.create(await options(other))),
    401,
    'PASSKEY_INVALID',
    'a credential id registered already',
  );

  // The shape is checked first: 400, not 401.
  assertError(t, await finish(session, { id: 'x' }), 400, 'VALIDATION_FAILED', 'members missing');
  assertError(t, await finish(session, 'a string'), 400, 'VALIDATION_FAILED', 'not an object');
  const real = new SoftAuthenticator(ORIGIN, RP_ID).create(await options(session));
  assertError(t, await finish(session, { ...real, extra: true }), 400, 'VALIDATION_FAILED', 'an unknown member');
  assertError(t, await finish(session, real, 'x'.repeat(101)), 400, 'VALIDATION_FAILED', 'a name over 100');
  assertError(
    t,
    await app.inject({
      method: 'POST',
      url: '/auth/passkeys/register',
      headers: bearer(session.accessToken),
      payload: { response: real, extra: 1 },
    }),
    400,
    'VALIDATION_FAILED',
    'an unknown body member',
  );
});

t.test('with cookies, the unsafe routes need X-CSRF-Token', async (t) => {
  const account = await register(app);
  const login = await loginWithCookies(app, account);
  const cookies = login.cookies;
  assertError(
    t,
    await app.inject({ method: 'POST', url: '/auth/passkeys/register/options', cookies, payload: {} }),
    403,
    'CSRF_FAILED',
    'options without the header',
  );
  const withCsrf = { 'x-csrf-token': login.csrf };
  const opened = await app.inject({
    method: 'POST',
    url: '/auth/passkeys/register/options',
    cookies,
    headers: withCsrf,
    payload: {},
  });
  t.equal(opened.statusCode, 200);
  const attestation = new SoftAuthenticator(ORIGIN, RP_ID).create(opened.json());
  assertError(
    t,
    await app.inject({ method: 'POST', url: '/auth/passkeys/register', cookies, payload: { response: attestation } }),
    403,
    'CSRF_FAILED',
    'register without the header',
  );
  const added = await app.inject({
    method: 'POST',
    url: '/auth/passkeys/register',
    cookies,
    headers: withCsrf,
    payload: { response: attestation },
  });
  t.equal(added.statusCode, 201, 'the challenge survived the refused attempt (CSRF is checked first)');
  const { id } = added.json().passkey;
  t.equal((await app.inject({ method: 'GET', url: '/auth/passkeys', cookies })).statusCode, 200, 'GET needs none');
  assertError(
    t,
    await app.inject({ method: 'DELETE', url: `/auth/passkeys/${id}`, cookies }),
    403,
    'CSRF_FAILED',
    'delete without the header',
  );
  t.equal(
    (await app.inject({ method: 'DELETE', url: `/auth/passkeys/${id}`, cookies, headers: withCsrf })).statusCode,
    204,
  );
});

t.test('housekeeping prunes expired challenges, used or not, and keeps live ones', async (t) => {
  const session = await registerAndLogin(app);
  await app.db.delete(webauthnChallenges);
  const old = await options(session);
  await app.inject({ method: 'POST', url: '/auth/passkeys/login/options', payload: {} });
  await finish(session, new SoftAuthenticator(ORIGIN, RP_ID).create(await options(session)));
  clock.advance(300_001);
  const live = await options(session);
  const result = await pruneExpired(app.db, new Date(clock.now()));
  t.equal(result.webauthnChallenges, 3, 'the two registration challenges and the login one');
  const left = await app.db.select().from(webauthnChallenges);
  t.same(
    left.map((row) => row.challenge),
    [live.challenge],
    'only the live one stays',
  );
  const [stale] = await app.db
    .select()
    .from(webauthnChallenges)
    .where(and(eq(webauthnChallenges.challenge, old.challenge)));
  t.notOk(stale);
  t.equal((await pruneExpired(app.db, new Date(clock.now()))).webauthnChallenges, 0, 'a second run finds nothing');
});
