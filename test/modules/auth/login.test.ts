// POST /auth/login on real Postgres and Redis: both transports, the stored refresh-token hash, one answer for
// unknown email and wrong password, security events, and the silent rehash of weaker password hashes.
import { createHash, randomBytes } from 'node:crypto';
import argon2 from 'argon2';
import { eq, sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import t from 'tap';
import { refreshTokens, securityEvents, sessions, users } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { decodeToken } from '../../helpers/forge.js';

const ctx = await buildTestApp(t);
const { app, config } = ctx;

const USER_AGENT = 'login-test/1.0';
const PASSWORD = 'correct horse battery staple';
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const uniqueEmail = (label = 'user') => `${label}-${randomBytes(5).toString('hex')}@example.com`;

async function registerUser(target = app, email = uniqueEmail(), password = PASSWORD) {
  const response = await target.inject({ method: 'POST', url: '/auth/register', payload: { email, password } });
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.body}`);
  return { email, password, user: response.json().user as Record<string, unknown> & { id: string } };
}

function login(payload: Record<string, unknown>, target = app) {
  return target.inject({
    method: 'POST',
    url: '/auth/login',
    headers: { 'user-agent': USER_AGENT },
    payload,
  });
}

interface ParsedCookie {
  name: string;
  value: string;
  attributes: Map<string, string | true>;
}

/** Set-Cookie headers parsed by hand, attribute names lower-cased, so each attribute is checked as sent. */
function setCookies(response: LightMyRequestResponse): ParsedCookie[] {
  const header = response.headers['set-cookie'];
  const lines = header === undefined ? [] : Array.isArray(header) ? header : [header];
  return lines.map((line) => {
    const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
    const index = pair.indexOf('=');
    return {
      name: pair.slice(0, index),
      value: pair.slice(index + 1),
      attributes: new Map(
        attributes.map((attribute) => {
          const [key = '', value] = attribute.split('=');
          return [key.toLowerCase(), value ?? true] as const;
        }),
      ),
    };
  });
}

async function eventsOf(type: string, userId: string | null, email?: string) {
  const rows = await app.db
    .select()
    .from(securityEvents)
    .where(eq(securityEvents.type, type as 'login_failed'));
  return rows.filter(
    (row) => row.userId === userId && (email === undefined || (row.details as { email?: string })?.email === email),
  );
}

t.test('body transport: the token response, no-store, no cookies', async (t) => {
  const { email, user } = await registerUser();
  const response = await login({ email, password: PASSWORD });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['cache-control'], 'no-store');
  t.equal(response.headers.pragma, 'no-cache');
  t.notOk(response.headers['set-cookie'], 'no cookies with the body transport');
  const body = response.json();
  t.strictSame(Object.keys(body).sort(), [
    'accessToken',
    'expiresIn',
    'refreshExpiresIn',
    'refreshToken',
    'tokenType',
    'user',
  ]);
  t.equal(body.tokenType, 'Bearer');
  t.equal(body.expiresIn, 900);
  t.equal(body.refreshExpiresIn, config.refreshTokenTtl);
  t.equal(body.refreshExpiresIn, 1_209_600);
  t.strictSame(body.user, user, 'the same user as at registration');
  t.match(body.user.createdAt, ISO_MS);
  t.notMatch(response.body, /argon2/, 'no password hash');

  const { header, claims } = decodeToken(body.accessToken);
  t.strictSame(Object.keys(header).sort(), ['alg', 'kid', 'typ']);
  t.equal(header.alg, 'RS256');
  t.equal(header.typ, 'at+jwt');
  t.equal(header.kid, app.keys.active.kid);
  t.strictSame(
    Object.keys(claims).sort(),
    ['aud', 'exp', 'iat', 'iss', 'jti', 'roles', 'sid', 'sub', 'ver', 'amr'].sort(),
  );
  t.equal(claims.ver, 0, "ver: a new user's token version");
  t.equal(claims.iss, config.issuer);
  t.equal(claims.aud, config.audience);
  t.equal(claims.sub, user.id);
  t.strictSame(claims.roles, ['user']);
  t.equal((claims.exp as number) - (claims.iat as number), 900);
  t.ok(Math.abs((claims.iat as number) * 1000 - Date.now()) < 60_000, 'iat is now');
  t.match(claims.jti, UUID_V7, 'jti is a UUIDv7');
  t.match(claims.sid, UUID);

  const [session] = await app.db
    .select()
    .from(sessions)
    .where(eq(sessions.id, claims.sid as string));
  t.equal(session?.userId, user.id, 'sid names a session of the user');
  t.equal(session?.ip, '127.0.0.1');
  t.equal(session?.userAgent, USER_AGENT);

  const me = await app.inject({
    method: 'GET',
    url: '/users/me',
    headers: { authorization: `Bearer ${body.accessToken}` },
  });
  t.equal(me.statusCode, 200, 'the access token works');
  t.strictSame(me.json(), { user });
});

t.test('two logins: two sessions, distinct tokens and jtis', async (t) => {
  const { email } = await registerUser();
  const first = (await login({ email, password: PASSWORD })).json();
  const second = (await login({ email, password: PASSWORD })).json();
  t.not(first.refreshToken, second.refreshToken);
  t.not(decodeToken(first.accessToken).claims.jti, decodeToken(second.accessToken).claims.jti);
  t.not(decodeToken(first.accessToken).claims.sid, decodeToken(second.accessToken).claims.sid);
});

t.test('email is trimmed and case-insensitive at login; transport defaults to body', async (t) => {
  const { email } = await registerUser();
  const response = await login({ email: `  ${email.toUpperCase()}  `, password: PASSWORD });
  t.equal(response.statusCode, 200);
  t.equal(response.json().user.email, email);
  t.ok(response.json().accessToken);
  const explicit = await login({ email, password: PASSWORD, transport: 'body' });
  t.equal(explicit.statusCode, 200);
  t.ok(explicit.json().refreshToken);
});

t.test('the refresh token: 256 bits base64url; only its SHA-256 is stored', async (t) => {
  const { email, user } = await registerUser();
  const { refreshToken, accessToken } = (await login({ email, password: PASSWORD })).json();
  t.match(refreshToken, /^[A-Za-z0-9_-]{43,}$/, 'at least 43 base64url characters');
  t.ok(Buffer.from(refreshToken, 'base64url').length >= 32, 'at least 256 bits');
  const sid = decodeToken(accessToken).claims.sid as string;

  const rows = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, sid));
  t.equal(rows.length, 1);
  const [row] = rows;
  t.equal(row?.tokenHash, createHash('sha256').update(refreshToken).digest('base64url'));
  t.equal(row?.parentId, null);
  t.equal(row?.usedAt, null);
  t.equal(row?.revokedAt, null);
  t.ok(row && Math.abs(row.expiresAt.getTime() - row.issuedAt.getTime() - config.refreshTokenTtl * 1000) < 1_000);

  // The raw token is in no column of any table.
  const tables = await app.db.execute(
    sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`,
  );
  const names = (tables as unknown as { rows: { table_name: string }[] }).rows.map((table) => table.table_name);
  t.ok(names.includes('refresh_tokens') && names.includes('users'), `tables: ${names.join(', ')}`);
  for (const name of names) {
    const found = await app.db.execute(
      sql`select count(*)::int as n from ${sql.identifier(name)} as t where strpos(t::text, ${refreshToken}) > 0`,
    );
    t.equal((found as unknown as { rows: { n: number }[] }).rows[0]?.n, 0, `not in ${name}`);
  }
  const [stored] = await app.db.select().from(users).where(eq(users.id, user.id));
  t.notOk(stored?.passwordHash.includes(refreshToken));
});

t.test('cookie transport: three cookies with the contract attributes, no tokens in the body', async (t) => {
  const { email, user } = await registerUser();
  const response = await login({ email, password: PASSWORD, transport: 'cookie' });
  t.equal(response.statusCode, 200);
  t.equal(response.headers['cache-control'], 'no-store');
  const body = response.json();
  const { csrfToken, ...rest } = body;
  t.strictSame(rest, { tokenType: 'Bearer', expiresIn: 900, refreshExpiresIn: config.refreshTokenTtl, user });
  t.notOk('accessToken' in body);
  t.notOk('refreshToken' in body);

  const cookies = setCookies(response);
  t.strictSame(cookies.map((cookie) => cookie.name).sort(), [
    '__Host-access_token',
    '__Host-csrf_token',
    '__Secure-refresh_token',
  ]);
  const byName = new Map(cookies.map((cookie) => [cookie.name, cookie]));
  const access = byName.get('__Host-access_token');
  const refresh = byName.get('__Secure-refresh_token');
  const csrf = byName.get('__Host-csrf_token');

  t.strictSame(Object.fromEntries(access?.attributes ?? []), {
    'max-age': '900',
    path: '/',
    httponly: true,
    secure: true,
    samesite: 'Strict',
  });
  t.strictSame(Object.fromEntries(refresh?.attributes ?? []), {
    'max-age': String(config.refreshTokenTtl),
    path: '/auth',
    httponly: true,
    secure: true,
    samesite: 'Strict',
  });
  t.strictSame(
    Object.fromEntries(csrf?.attributes ?? []),
    { 'max-age': String(config.refreshTokenTtl), path: '/', secure: true, samesite: 'Strict' },
    'the csrf cookie is readable by scripts (no HttpOnly) and lives as long as the refresh cookie',
  );

  const { header, claims } = decodeToken(access?.value ?? '');
  t.equal(header.typ, 'at+jwt');
  t.equal(claims.sub, user.id);
  t.match(refresh?.value, /^[A-Za-z0-9_-]{43,}$/);
  t.match(csrf?.value, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/, 'a nonce and its HMAC with the session');
  t.equal(csrfToken, csrf?.value, 'the body carries the csrf value, for a frontend on another host');
  t.not(csrf?.value, refresh?.value);
  t.notOk(response.body.includes(access?.value ?? '-'), 'the access token is not in the body');
  t.notOk(response.body.includes(refresh?.value ?? '-'), 'the refresh token is not in the body');

  const [row] = await app.db
    .select()
    .from(refreshTokens)
    .where(eq(refreshTokens.sessionId, claims.sid as string));
  t.equal(
    row?.tokenHash,
    createHash('sha256')
      .update(refresh?.value ?? '')
      .digest('base64url'),
  );
});

t.test('COOKIE_SECURE=false: unprefixed names, no Secure', async (t) => {
  const insecure = await buildTestApp(t, { env: { COOKIE_SECURE: 'false' } });
  const { email } = await registerUser(insecure.app);
  const response = await login({ email, password: PASSWORD, transport: 'cookie' }, insecure.app);
  t.equal(response.statusCode, 200);
  const cookies = setCookies(response);
  t.strictSame(cookies.map((cookie) => cookie.name).sort(), ['access_token', 'csrf_token', 'refresh_token']);
  for (const cookie of cookies) {
    t.notOk(cookie.attributes.has('secure'), `${cookie.name} has no Secure`);
    t.equal(cookie.attributes.get('samesite'), 'Strict', `${cookie.name} is still SameSite=Strict`);
  }
  const byName = new Map(cookies.map((cookie) => [cookie.name, cookie]));
  t.equal(byName.get('access_token')?.attributes.get('httponly'), true);
  t.equal(byName.get('refresh_token')?.attributes.get('httponly'), true);
  t.equal(byName.get('refresh_token')?.attributes.get('path'), '/auth');
  t.notOk(byName.get('csrf_token')?.attributes.has('httponly'));
  const me = await insecure.app.inject({
    method: 'GET',
    url: '/users/me',
    cookies: { access_token: byName.get('access_token')?.value ?? '' },
  });
  t.equal(me.statusCode, 200, 'the unprefixed access cookie authenticates');
});

t.test('enumeration: unknown email and wrong password give byte-identical answers', async (t) => {
  const { email } = await registerUser();
  const wrongPassword = await login({ email, password: 'not the password at all' });
  const unknownEmail = await login({ email: uniqueEmail('ghost'), password: 'not the password at all' });
  t.equal(wrongPassword.statusCode, 401);
  t.equal(unknownEmail.statusCode, 401);
  t.equal(wrongPassword.body, unknownEmail.body, 'byte-identical bodies');
  t.strictSame(wrongPassword.json(), {
    statusCode: 401,
    code: 'INVALID_CREDENTIALS',
    error: 'Unauthorized',
    message: wrongPassword.json().message,
  });
  const comparable = (response: LightMyRequestResponse) => {
    const { 'x-request-id': requestId, date: _date, ...rest } = response.headers;
    t.match(requestId, UUID, 'a request id');
    return rest;
  };
  t.strictSame(comparable(wrongPassword), comparable(unknownEmail), 'same headers but the request id');
  t.equal(wrongPassword.headers['www-authenticate'], `Bearer realm="${config.issuer}"`, 'no invalid_token');
  t.notOk(wrongPassword.headers['set-cookie']);

  // Also the same for an unknown email that differs only in case from nothing, and for an empty-ish password.
  const shortPassword = await login({ email, password: 'x' });
  t.equal(shortPassword.body, unknownEmail.body, 'a password under the policy minimum is just wrong');
});

t.test('security events: login_succeeded and login_failed with ip and user agent', async (t) => {
  const { email, user } = await registerUser();
  const ok = await login({ email, password: PASSWORD });
  t.equal(ok.statusCode, 200);
  const succeeded = await eventsOf('login_succeeded', user.id);
  t.equal(succeeded.length, 1);
  t.equal(succeeded[0]?.ip, '127.0.0.1');
  t.equal(succeeded[0]?.userAgent, USER_AGENT);

  await login({ email, password: 'wrong password here' });
  const wrong = await eventsOf('login_failed', user.id);
  t.equal(wrong.length, 1, 'a wrong password is recorded against the user');
  t.equal(wrong[0]?.ip, '127.0.0.1');
  t.equal(wrong[0]?.userAgent, USER_AGENT);
  t.notMatch(JSON.stringify(wrong[0]?.details ?? {}), /wrong password here/, 'never the tried password');

  const ghost = uniqueEmail('ghost');
  await login({ email: ghost, password: 'wrong password here' });
  const unknown = await eventsOf('login_failed', null, ghost);
  t.equal(unknown.length, 1, 'an unknown email is recorded without a user');
  t.equal(unknown[0]?.ip, '127.0.0.1');
  t.equal(unknown[0]?.userAgent, USER_AGENT);
});

t.test('validation: 400 naming the field, never 500', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['missing email', { password: PASSWORD }, /email/],
    ['missing password', { email: uniqueEmail() }, /password/],
    ['bad email', { email: 'nope', password: PASSWORD }, /email/],
    ['unknown property', { email: uniqueEmail(), password: PASSWORD, remember: true }, /remember/],
    ['unknown transport', { email: uniqueEmail(), password: PASSWORD, transport: 'smoke-signal' }, /transport/],
    ['password over 4096 characters', { email: uniqueEmail(), password: 'p'.repeat(4097) }, /password/],
  ];
  for (const [label, payload, field] of cases) {
    const response = await login(payload as Record<string, unknown>);
    t.equal(response.statusCode, 400, `${label}: 400`);
    t.equal(response.json().code, 'VALIDATION_FAILED', `${label}: VALIDATION_FAILED`);
    t.match(response.json().message, field, `${label}: names the field (${response.json().message})`);
  }
  const malformed = await app.inject({
    method: 'POST',
    url: '/auth/login',
    headers: { 'content-type': 'application/json' },
    payload: '{"email": "a@b.c", "password": ',
  });
  t.equal(malformed.statusCode, 400);
  t.equal(malformed.json().code, 'VALIDATION_FAILED');
});

t.test('a weaker argon2 hash is upgraded at login, and the password still works', async (t) => {
  const email = uniqueEmail('legacy');
  const password = 'legacy password 2019';
  const weakHash = await argon2.hash(password, {
    type: argon2.argon2id,
    memoryCost: 4096,
    timeCost: 1,
    parallelism: 1,
  });
  t.match(weakHash, /\$m=4096,t=1,p=1\$/);
  const [inserted] = await app.db
    .insert(users)
    .values({ email, passwordHash: weakHash, name: null })
    .returning({ id: users.id });
  const userId = inserted?.id ?? '';

  const first = await login({ email, password });
  t.equal(first.statusCode, 200, 'logs in with the old hash');
  const [after] = await app.db.select({ hash: users.passwordHash }).from(users).where(eq(users.id, userId));
  t.match(after?.hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'rehashed with the configured parameters');
  t.not(after?.hash, weakHash);
  t.ok(await argon2.verify(after?.hash ?? '', password), 'the new hash verifies the same password');

  const second = await login({ email, password });
  t.equal(second.statusCode, 200, 'logs in with the new hash');
  const [unchanged] = await app.db.select({ hash: users.passwordHash }).from(users).where(eq(users.id, userId));
  t.equal(unchanged?.hash, after?.hash, 'a current hash is not rehashed again');
  t.equal((await login({ email, password: 'legacy password 2020' })).statusCode, 401, 'wrong password still fails');
});
