// POST /auth/register on real Postgres and Redis: the 201 shape, normalisation, the password policy,
// validation that names its field, the race on one email, and the `registered` event.
import { randomBytes } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { securityEvents, users } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';

// No verification mail: its `verification_sent` event would land beside `registered` at its own time (the accounts
// tests cover it).
const { app } = await buildTestApp(t, { env: { EMAIL_VERIFICATION: 'off' } });

const USER_AGENT = 'register-test/1.0';
const STRONG = 'correct horse battery staple';
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const uniqueEmail = (label = 'user') => `${label}-${randomBytes(5).toString('hex')}@example.com`;

function register(payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/auth/register',
    headers: { 'user-agent': USER_AGENT, ...headers },
    payload: payload as Record<string, unknown>,
  });
}

function login(email: string, password: string) {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } });
}

async function storedUser(email: string) {
  const [row] = await app.db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, email.toLowerCase()));
  return row;
}

t.test('201 with the user and nothing else', async (t) => {
  const email = uniqueEmail();
  const response = await register({ email, password: STRONG, name: 'Ada Lovelace' });
  t.equal(response.statusCode, 201);
  t.match(response.headers['content-type'], /^application\/json/);
  const body = response.json();
  t.strictSame(Object.keys(body), ['user']);
  const { user } = body;
  t.strictSame(Object.keys(user).sort(), [
    'createdAt',
    'email',
    'emailVerified',
    'id',
    'mfaEnabled',
    'name',
    'roles',
    'updatedAt',
  ]);
  t.equal(user.emailVerified, false, 'nobody has opened a link yet');
  t.match(user.id, UUID);
  t.equal(user.email, email);
  t.equal(user.name, 'Ada Lovelace');
  t.strictSame(user.roles, ['user']);
  t.match(user.createdAt, ISO_MS);
  t.match(user.updatedAt, ISO_MS);
  t.equal(new Date(user.createdAt).toISOString(), user.createdAt);
  t.ok(Math.abs(Date.parse(user.createdAt) - Date.now()) < 60_000, 'createdAt is now');
  t.notMatch(response.body, /argon2|password/i, 'no password or hash in the body');
  t.notOk(response.headers['set-cookie'], 'registration sets no cookies');

  const row = await storedUser(email);
  t.ok(row, 'stored');
  t.equal(row?.id, user.id);
  t.match(row?.passwordHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'argon2id with the configured parameters');
  t.not(row?.passwordHash, STRONG, 'never the plain password');
});

t.test('email is trimmed and lower-cased; duplicates are case-insensitive', async (t) => {
  const local = `Mixed.Case-${randomBytes(4).toString('hex')}`;
  const response = await register({ email: `  ${local}@Example.COM \t`, password: STRONG });
  t.equal(response.statusCode, 201);
  const stored = `${local.toLowerCase()}@example.com`;
  t.equal(response.json().user.email, stored);
  t.equal((await storedUser(stored))?.email, stored, 'the stored form is lower-case');

  for (const variant of [stored, stored.toUpperCase(), ` ${local}@EXAMPLE.com `]) {
    const again = await register({ email: variant, password: STRONG });
    t.equal(again.statusCode, 409, `${JSON.stringify(variant)} is taken`);
    t.strictSame(again.json(), {
      statusCode: 409,
      code: 'EMAIL_TAKEN',
      error: 'Conflict',
      message: again.json().message,
    });
    t.equal(typeof again.json().message, 'string');
  }
  const count = await app.db
    .select({ id: users.id })
    .from(users)
    .where(eq(sql`lower(${users.email})`, stored));
  t.equal(count.length, 1, 'one row');
});

t.test('name: trimmed, absent or null means null, at most 100 characters', async (t) => {
  const trimmed = await register({ email: uniqueEmail(), password: STRONG, name: '  Grace Hopper \n' });
  t.equal(trimmed.statusCode, 201);
  t.equal(trimmed.json().user.name, 'Grace Hopper');

  const absent = await register({ email: uniqueEmail(), password: STRONG });
  t.equal(absent.statusCode, 201);
  t.equal(absent.json().user.name, null);
  t.ok('name' in absent.json().user, 'name is present, as null');

  const explicitNull = await register({ email: uniqueEmail(), password: STRONG, name: null });
  t.equal(explicitNull.statusCode, 201);
  t.equal(explicitNull.json().user.name, null);

  const hundred = 'n'.repeat(100);
  const exactly = await register({ email: uniqueEmail(), password: STRONG, name: ` ${hundred} ` });
  t.equal(exactly.statusCode, 201, '100 characters (after trimming) are accepted');
  t.equal(exactly.json().user.name, hundred);

  const tooLong = await register({ email: uniqueEmail(), password: STRONG, name: 'n'.repeat(101) });
  t.equal(tooLong.statusCode, 400);
  t.equal(tooLong.json().code, 'VALIDATION_FAILED');
  t.match(tooLong.json().message, /name/);
});

t.test('password policy: PASSWORD_TOO_WEAK', async (t) => {
  const cases: [string, string][] = [
    ['7 characters', 'aB3$xYz'],
    ['empty', ''],
    ['129 characters', `${'x9'.repeat(64)}q`],
    ['129 emoji (code points, not UTF-16 units)', '🔑'.repeat(129)],
    ['common', 'password123'],
    ['common, other case', 'PassWord123'],
    ['common, full-width (NFKC)', 'Ｐａｓｓｗｏｒｄ１２３'],
    ['short after NFKC? no: 40 × ㍿ is 160 code points after NFKC', '㍿'.repeat(40)],
    ['whitespace only, short', '       '],
  ];
  for (const [label, password] of cases) {
    const email = uniqueEmail('weak');
    const response = await register({ email, password });
    t.equal(response.statusCode, 400, `${label}: 400`);
    t.equal(response.json().code, 'PASSWORD_TOO_WEAK', `${label}: PASSWORD_TOO_WEAK`);
    t.equal(response.json().error, 'Bad Request');
    t.equal(await storedUser(email), undefined, `${label}: no user stored`);
  }
});

t.test('password policy: the boundaries and NFKC are accepted', async (t) => {
  const accepted: [string, string][] = [
    ['exactly 8', 'k7#Qm2!z'],
    ['exactly 128', `${'Zq8'.repeat(42)}xy`],
    ['128 emoji', '🔑'.repeat(128)],
    ['4 × ㍿ is 16 code points after NFKC', '㍿'.repeat(4)],
    ['a space-containing passphrase', STRONG],
  ];
  for (const [label, password] of accepted) {
    t.equal([...password.normalize('NFKC')].length >= 8, true);
    const response = await register({ email: uniqueEmail('ok'), password });
    t.equal(response.statusCode, 201, `${label}: 201`);
  }
});

t.test('NFKC: registered in one Unicode spelling, logged in with an equivalent one', async (t) => {
  const pairs: [string, string, string][] = [
    ['full-width then ASCII', 'Ｓｅｃｒｅｔ－Ｐａｓｓ９', 'Secret-Pass9'],
    ['ASCII then full-width', 'Another-Secret7', 'Ａｎｏｔｈｅｒ－Ｓｅｃｒｅｔ７'],
    ['composed then decomposed', 'caf\u00e9-au-lait-42', 'cafe\u0301-au-lait-42'],
    ['ligature then letters', '\ufb01ne-tuned-oboe', 'fine-tuned-oboe'],
  ];
  for (const [label, registered, loggedIn] of pairs) {
    t.not(registered, loggedIn);
    const email = uniqueEmail('nfkc');
    t.equal((await register({ email, password: registered })).statusCode, 201, `${label}: registered`);
    t.equal((await login(email, loggedIn)).statusCode, 200, `${label}: equivalent form logs in`);
    t.equal((await login(email, registered)).statusCode, 200, `${label}: original form logs in`);
  }
  const email = uniqueEmail('nfkc');
  await register({ email, password: 'Ｓｅｃｒｅｔ－Ｐａｓｓ９' });
  t.equal((await login(email, 'Secret-Pass8')).statusCode, 401, 'a different password still fails');
});

t.test('validation: every 400 names its field and never a 500', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown property', { email: uniqueEmail(), password: STRONG, isAdmin: true }, /isAdmin/],
    ['roles cannot be chosen', { email: uniqueEmail(), password: STRONG, roles: ['admin'] }, /roles/],
    ['missing email', { password: STRONG }, /email/],
    ['missing password', { email: uniqueEmail() }, /password/],
    ['bad email format', { email: 'not-an-email', password: STRONG }, /email/],
    ['email without a local part', { email: '@example.com', password: STRONG }, /email/],
    ['email that is only whitespace', { email: '   ', password: STRONG }, /email/],
    ['email not a string', { email: 42, password: STRONG }, /email/],
    ['email over 254 characters', { email: `${'a'.repeat(64)}@${'b'.repeat(186)}.com`, password: STRONG }, /email/],
    ['name an object', { email: uniqueEmail(), password: STRONG, name: { first: 'a' } }, /name/],
  ];
  await assertValidationFailures(t, cases);
});

// Bodies are validated without type coercion (src/lib/validation.ts): a wrong JSON type is a 400 naming the field.
t.test('validation: JSON body types are not coerced', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['password a number', { email: uniqueEmail(), password: 123456789012 }, /password/],
    ['password null', { email: uniqueEmail(), password: null }, /password/],
    ['password an array', { email: uniqueEmail(), password: [STRONG] }, /password/],
    ['email an array', { email: [uniqueEmail()], password: STRONG }, /email/],
    ['name a number', { email: uniqueEmail(), password: STRONG, name: 7 }, /name/],
    ['name a boolean', { email: uniqueEmail(), password: STRONG, name: true }, /name/],
  ];
  await assertValidationFailures(t, cases);
});

async function assertValidationFailures(t: Test, cases: [string, unknown, RegExp][]) {
  for (const [label, payload, field] of cases) {
    const response = await register(payload);
    t.equal(response.statusCode, 400, `${label}: 400`);
    const body = response.json();
    t.equal(body.code, 'VALIDATION_FAILED', `${label}: VALIDATION_FAILED`);
    t.strictSame(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${label}: error shape`);
    t.match(body.message, field, `${label}: the message names the field (${body.message})`);
  }
}

t.test('malformed bodies are 400 or 415, never 500', async (t) => {
  const raw = (payload: string, contentType = 'application/json') =>
    app.inject({ method: 'POST', url: '/auth/register', headers: { 'content-type': contentType }, payload });
  for (const payload of ['{"email":', 'null', '[]', '"a string"', '42', '']) {
    const response = await raw(payload);
    t.equal(response.statusCode, 400, `${JSON.stringify(payload)}: 400`);
    t.equal(response.json().code, 'VALIDATION_FAILED');
  }
  const form = await raw('email=a%40b.com&password=x', 'application/x-www-form-urlencoded');
  t.equal(form.statusCode, 415);
  t.equal(form.json().code, 'UNSUPPORTED_MEDIA_TYPE');
  const text = await raw(JSON.stringify({ email: uniqueEmail(), password: STRONG }), 'text/plain');
  t.equal(text.statusCode, 415);
  const huge = await register({ email: uniqueEmail(), password: 'p'.repeat(20_000) });
  t.equal(huge.statusCode, 413, 'a body over 16 KiB');
  t.equal(huge.json().code, 'PAYLOAD_TOO_LARGE');
  const long = await register({ email: uniqueEmail(), password: 'p'.repeat(10_000) });
  t.equal(long.statusCode, 400, 'a very long password is refused by the policy, not hashed');
  t.equal(long.json().code, 'PASSWORD_TOO_WEAK');
});

t.test('ten parallel registrations of one email: one 201, nine 409 EMAIL_TAKEN', async (t) => {
  const email = uniqueEmail('race');
  // Case and whitespace variants race too: the database decides, on lower(email).
  const variants = Array.from({ length: 10 }, (_, index) =>
    index % 3 === 0 ? email : index % 3 === 1 ? email.toUpperCase() : `  ${email}  `,
  );
  const responses = await Promise.all(variants.map((variant) => register({ email: variant, password: STRONG })));
  const statuses = responses.map((response) => response.statusCode).sort();
  t.strictSame(statuses, [201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
  for (const response of responses.filter((response) => response.statusCode === 409)) {
    t.equal(response.json().code, 'EMAIL_TAKEN');
  }
  const rows = await app.db
    .select({ id: users.id })
    .from(users)
    .where(eq(sql`lower(${users.email})`, email));
  t.equal(rows.length, 1, 'exactly one row');
  const events = await app.db
    .select()
    .from(securityEvents)
    .where(eq(securityEvents.userId, rows[0]?.id ?? ''));
  t.strictSame(
    events.map((event) => event.type),
    ['registered'],
    'one registered event',
  );
});

t.test('a `registered` security event with ip and user agent', async (t) => {
  const email = uniqueEmail('event');
  const response = await register({ email, password: STRONG });
  t.equal(response.statusCode, 201);
  const userId = response.json().user.id as string;
  const events = await app.db.select().from(securityEvents).where(eq(securityEvents.userId, userId));
  t.equal(events.length, 1);
  const [event] = events;
  t.equal(event?.type, 'registered');
  t.equal(event?.ip, '127.0.0.1');
  t.equal(event?.userAgent, USER_AGENT);
  t.ok(event && Math.abs(event.at.getTime() - Date.parse(response.json().user.createdAt)) < 5_000);
  t.notMatch(JSON.stringify(event?.details ?? {}), /argon2|correct horse/, 'no secret in the event details');
});

t.test('a failed registration records no event and no user', async (t) => {
  const email = uniqueEmail('weak');
  const before = await app.db.select({ id: securityEvents.id }).from(securityEvents);
  await register({ email, password: 'short' });
  await register({ email: 'nope', password: STRONG });
  const after = await app.db.select({ id: securityEvents.id }).from(securityEvents);
  t.equal(after.length, before.length);
  t.equal(await storedUser(email), undefined);
});
