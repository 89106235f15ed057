// The one verifier, attacked: every rejection path against the running app on real Postgres and Redis, through
// GET /users/me. Hostile tokens are forged by hand (test/helpers/forge.ts); "otherwise valid" ones are signed
// with our own key so that exactly one thing is wrong with each.
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import accessTokensPlugin from '../../src/plugins/access-tokens.js';
import authenticatePlugin, { principalOf } from '../../src/plugins/authenticate.js';
import configPlugin from '../../src/plugins/config.js';
import cookiesPlugin from '../../src/plugins/cookies.js';
import denyListPlugin from '../../src/plugins/deny-list.js';
import errorHandlerPlugin from '../../src/plugins/error-handler.js';
import keysPlugin from '../../src/plugins/keys.js';
import metricsPlugin from '../../src/plugins/metrics.js';
import secretsPlugin from '../../src/plugins/secrets.js';
import securityPlugin from '../../src/plugins/security.js';
import storePlugin from '../../src/plugins/store.js';
import { denyKey } from '../../src/store/store.js';
import { buildTestApp } from '../helpers/app.js';
import { TestClock } from '../helpers/clock.js';
import {
  applyOverrides,
  assemble,
  attackerKey,
  type Claims,
  decodeToken,
  encodeSegment,
  mintWithOurKey,
  type Overrides,
  ourKey,
  signHmac,
  signHs256,
  signRsa,
  tamperClaims,
  unsigned,
  uuidv7,
  validClaims,
} from '../helpers/forge.js';
import { startProxy } from '../helpers/proxy.js';
import { testServers } from '../helpers/servers.js';

// A whole second, so `iat`/`exp` boundaries fall on exact milliseconds.
const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
const ctx = await buildTestApp(t, { clock });
const { app, config } = ctx;
const keysDir = config.keysDir;
const our = await ourKey(keysDir);
const attacker = attackerKey();
const REALM = `Bearer realm="${config.issuer}"`;
const INVALID_TOKEN = `Bearer realm="${config.issuer}", error="invalid_token"`;

interface Session {
  email: string;
  userId: string;
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  claims: Claims;
}

let counter = 0;
async function newSession(target = app): Promise<Session> {
  counter += 1;
  const email = `auth-${counter}-${Date.now().toString(36)}@example.com`;
  const password = 'correct horse battery staple';
  const registered = await target.inject({ method: 'POST', url: '/auth/register', payload: { email, password } });
  if (registered.statusCode !== 201) throw new Error(`register: ${registered.body}`);
  const loggedIn = await target.inject({ method: 'POST', url: '/auth/login', payload: { email, password } });
  if (loggedIn.statusCode !== 200) throw new Error(`login: ${loggedIn.body}`);
  const { accessToken, refreshToken, user } = loggedIn.json();
  const { claims } = decodeToken(accessToken);
  return { email, userId: user.id, accessToken, refreshToken, sessionId: claims.sid as string, claims };
}

const alice = await newSession();

function me(headers: Record<string, string> = {}, cookies: Record<string, string> = {}, target = app) {
  return target.inject({ method: 'GET', url: '/users/me', headers, cookies });
}
const bearer = (token: string) => me({ authorization: `Bearer ${token}` });

/** A claim set like ours for alice, at the app's current time, with overrides. */
const claimsFor = (overrides: Overrides = {}, session: Session = alice) =>
  validClaims(
    {
      issuer: config.issuer,
      audience: config.audience,
      subject: session.userId,
      sessionId: session.sessionId,
      nowMs: clock.now(),
    },
    overrides,
  );
const ourHeader = (overrides: Overrides = {}) => ({ alg: 'RS256', typ: 'at+jwt', kid: our.kid, ...overrides });

function assertOk(t: Test, response: LightMyRequestResponse, userId = alice.userId, label = 'accepted') {
  t.equal(response.statusCode, 200, `${label}: 200 (${response.body.slice(0, 120)})`);
  if (response.statusCode === 200) t.equal(response.json().user.id, userId, `${label}: the right user`);
}

/** 401 in the contract's shape; `invalid_token` only when a token was sent and rejected. */
function assertRejected(t: Test, response: LightMyRequestResponse, code: string, label = code) {
  t.equal(response.statusCode, 401, `${label}: 401`);
  const body = response.json();
  t.strictSame(
    body,
    { statusCode: 401, code, error: 'Unauthorized', message: body.message },
    `${label}: body shape and code`,
  );
  t.equal(typeof body.message, 'string');
  t.notMatch(body.message, /jwt|signature|kid|alg|FAST_JWT/i, `${label}: no library detail leaks`);
  t.equal(
    response.headers['www-authenticate'],
    code === 'TOKEN_MISSING' ? REALM : INVALID_TOKEN,
    `${label}: WWW-Authenticate`,
  );
}

t.test('controls: the issued token and a forge-minted one are accepted', async (t) => {
  assertOk(t, await bearer(alice.accessToken), alice.userId, 'issued token');
  t.equal(decodeToken(alice.accessToken).header.kid, our.kid, 'forge computes the same kid');
  assertOk(t, await bearer(await mintWithOurKey(keysDir, claimsFor())), alice.userId, 'minted with our key');
  assertOk(t, await bearer(signRsa(ourHeader(), claimsFor(), our.privateKey)), alice.userId, 'signRsa with our key');
});

t.test('no token: TOKEN_MISSING with the bare realm', async (t) => {
  assertRejected(t, await me(), 'TOKEN_MISSING', 'no header, no cookie');
});

t.test('another scheme or a bare value counts as no token', async (t) => {
  const values = [
    'Basic dXNlcjpwYXNz',
    `Basic ${alice.accessToken}`,
    `Token ${alice.accessToken}`,
    `DPoP ${alice.accessToken}`,
    alice.accessToken,
    `Bearer${alice.accessToken}`,
  ];
  for (const value of values) {
    assertRejected(t, await me({ authorization: value }), 'TOKEN_MISSING', value.slice(0, 24));
  }
  // The header is ignored, so the access cookie still counts.
  const withCookie = await me({ authorization: 'Basic dXNlcjpwYXNz' }, { '__Host-access_token': alice.accessToken });
  assertOk(t, withCookie, alice.userId, 'Basic header with a valid access cookie');
});

t.test('Bearer with an empty value: TOKEN_INVALID', async (t) => {
  for (const value of ['Bearer', 'Bearer ', 'Bearer    ', 'bearer', 'Bearer \t ']) {
    assertRejected(t, await me({ authorization: value }), 'TOKEN_INVALID', JSON.stringify(value));
  }
});

t.test('the Bearer scheme name is case-insensitive', async (t) => {
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    assertOk(t, await me({ authorization: `${scheme} ${alice.accessToken}` }), alice.userId, scheme);
  }
  assertOk(t, await me({ authorization: `Bearer   ${alice.accessToken}` }), alice.userId, 'several spaces');
});

t.test('alg: none is rejected in every spelling', async (t) => {
  const { signature } = decodeToken(alice.accessToken);
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    assertRejected(t, await bearer(unsigned(ourHeader(), claimsFor(), alg)), 'TOKEN_INVALID', `${alg}, empty sig`);
    assertRejected(
      t,
      await bearer(assemble(ourHeader({ alg }), claimsFor({ roles: ['admin'] }), signature)),
      'TOKEN_INVALID',
      `${alg}, admin claims with a real signature`,
    );
  }
  const noKid = unsigned({ typ: 'at+jwt' }, claimsFor());
  assertRejected(t, await bearer(noKid), 'TOKEN_INVALID', 'none without kid');
});

t.test('HS256 signed with our RSA public key as the HMAC secret (PEM and JWK forms)', async (t) => {
  const jwksResponse = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  const published = jwksResponse.json().keys[0] as Record<string, unknown>;
  t.equal(published.kid, our.kid);
  const spkiPem = our.publicKeyPem;
  const pkcs1Pem = createPublicKey(our.privateKey).export({ format: 'pem', type: 'pkcs1' }).toString();
  const secrets: [string, string | Buffer][] = [
    ['SPKI PEM', spkiPem],
    ['SPKI PEM without the final newline', spkiPem.trimEnd()],
    ['SPKI PEM with CRLF', spkiPem.replace(/\n/g, '\r\n')],
    ['PKCS#1 PEM', pkcs1Pem],
    ['SPKI DER', createPublicKey(our.privateKey).export({ format: 'der', type: 'spki' })],
    ['the published JWK as JSON', JSON.stringify(published)],
    ['the JWKS document as served', jwksResponse.body],
    ['the bare {kty,n,e} JWK', JSON.stringify(our.publicJwk)],
    ['the modulus n', String(published.n)],
  ];
  for (const [label, secret] of secrets) {
    for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
      const token = signHmac(ourHeader({ alg }), claimsFor({ roles: ['admin'] }), secret, alg);
      assertRejected(t, await bearer(token), 'TOKEN_INVALID', `${alg} with ${label}`);
    }
  }
});

t.test('payload tampering keeps the signature and fails it', async (t) => {
  const tampered: [string, Overrides][] = [
    ['roles: ["admin"]', { roles: ['admin'] }],
    ['roles: ["user", "admin"]', { roles: ['user', 'admin'] }],
    ['exp a year later', { exp: (alice.claims.exp as number) + 31_536_000 }],
    ['another sub', { sub: '00000000-0000-4000-8000-000000000000' }],
  ];
  for (const [label, overrides] of tampered) {
    assertRejected(t, await bearer(tamperClaims(alice.accessToken, overrides)), 'TOKEN_INVALID', label);
  }
  // The header too: the signature covers it.
  const { claims, signature } = decodeToken(alice.accessToken);
  const reheadered = assemble(ourHeader({ typ: 'application/at+jwt' }), claims, signature);
  assertRejected(t, await bearer(reheadered), 'TOKEN_INVALID', 'header re-encoded');
  // One flipped signature character.
  const flipped =
    alice.accessToken.slice(0, -2) + (alice.accessToken.at(-2) === 'A' ? 'B' : 'A') + alice.accessToken.at(-1);
  assertRejected(t, await bearer(flipped), 'TOKEN_INVALID', 'signature altered');
  assertRejected(t, await bearer(alice.accessToken.replace(/\.[^.]*$/, '.')), 'TOKEN_INVALID', 'signature removed');
});

t.test('kid: unknown, missing, path traversal, wrong type', async (t) => {
  const kids: [string, unknown][] = [
    ['unknown kid', 'no-such-key'],
    ['our kid with a suffix', `${our.kid}x`],
    ['kid ../../etc/passwd', '../../etc/passwd'],
    ['kid /dev/null', '/dev/null'],
    ['kid with SQL', "' OR '1'='1"],
    ['kid __proto__', '__proto__'],
    ['kid constructor', 'constructor'],
    ['kid a number', 1],
    ['kid null', null],
    ['kid an array holding ours', [our.kid]],
    ['no kid', undefined],
  ];
  for (const [label, kid] of kids) {
    const header = { alg: 'RS256', typ: 'at+jwt', ...(kid === undefined ? {} : { kid }) };
    assertRejected(t, await bearer(signRsa(header, claimsFor(), our.privateKey)), 'TOKEN_INVALID', label);
  }
  // The classic: a kid naming a file, HMAC-signed with that file's contents (or with nothing, for /dev/null).
  const passwd = await readFile('/etc/passwd');
  const traversal = [
    ['../../etc/passwd', passwd],
    ['../../../../../../etc/passwd', passwd],
    ['/dev/null', Buffer.alloc(0)],
    ['../../dev/null', ''],
  ] as const;
  for (const [kid, secret] of traversal) {
    const token = signHs256({ alg: 'HS256', typ: 'at+jwt', kid }, claimsFor(), secret);
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', `HS256 with kid ${kid}`);
  }
});

t.test('a key the token names is never used: embedded jwk, jku, x5u', async (t) => {
  const hits: string[] = [];
  const server = http.createServer((request, response) => {
    hits.push(request.url ?? '');
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ keys: [{ ...attacker.publicJwk, kid: attacker.kid, use: 'sig', alg: 'RS256' }] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const attackerJwk = { ...attacker.publicJwk, kid: attacker.kid };

  const headers: [string, Record<string, unknown>][] = [
    ['embedded jwk, attacker kid', { kid: attacker.kid, jwk: attackerJwk }],
    ['embedded jwk, our kid', { kid: our.kid, jwk: attackerJwk }],
    ['embedded jwk, no kid', { kid: undefined, jwk: attackerJwk }],
    ['jku, attacker kid', { kid: attacker.kid, jku: `${base}/jwks.json` }],
    ['jku, our kid', { kid: our.kid, jku: `${base}/jwks.json` }],
    ['x5u, attacker kid', { kid: attacker.kid, x5u: `${base}/cert.pem` }],
    ['x5u, our kid', { kid: our.kid, x5u: `${base}/cert.pem` }],
    ['jku and jwk together', { kid: attacker.kid, jku: `${base}/jwks.json`, jwk: attackerJwk }],
  ];
  for (const [label, extra] of headers) {
    const header = applyOverrides({ alg: 'RS256', typ: 'at+jwt' } as Record<string, unknown>, extra);
    const token = signRsa(header, claimsFor({ roles: ['admin'] }), attacker.privateKey);
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', label);
  }
  t.strictSame(hits, [], 'the verifier never fetched the attacker URL');
});

t.test('a different RSA key under our kid', async (t) => {
  const token = signRsa(ourHeader(), claimsFor({ roles: ['admin'] }), attacker.privateKey);
  assertRejected(t, await bearer(token), 'TOKEN_INVALID');
});

t.test('only RS256: our key with another RSA algorithm is rejected', async (t) => {
  for (const alg of ['RS384', 'RS512', 'PS256'] as const) {
    const token = signRsa(ourHeader({ alg }), claimsFor(), our.privateKey, alg);
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', alg);
  }
  const mismatched = signRsa(ourHeader({ alg: 'RS512' }), claimsFor(), our.privateKey, 'RS256');
  assertRejected(t, await bearer(mismatched), 'TOKEN_INVALID', 'RS256 signature labelled RS512');
  for (const alg of ['ES256', 'EdDSA', 'rs256']) {
    const token = signRsa(ourHeader({ alg }), claimsFor(), our.privateKey);
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', `header alg ${alg}`);
  }
});

t.test('typ: at+jwt and application/at+jwt only', async (t) => {
  const rejected: [string, unknown][] = [
    ['typ JWT', 'JWT'],
    ['typ jwt', 'jwt'],
    ['typ application/jwt', 'application/jwt'],
    ['typ JOSE', 'JOSE'],
    ['typ at+jwt with a trailing space', 'at+jwt '],
    ['typ a number', 1],
    ['no typ', undefined],
  ];
  for (const [label, typ] of rejected) {
    const token = await mintWithOurKey(keysDir, claimsFor(), { typ });
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', label);
  }
  const accepted = await mintWithOurKey(keysDir, claimsFor(), { typ: 'application/at+jwt' });
  assertOk(t, await bearer(accepted), alice.userId, 'typ application/at+jwt');
});

t.test('crit headers are not understood, so rejected', async (t) => {
  const token = await mintWithOurKey(keysDir, claimsFor(), { crit: ['x-policy'], 'x-policy': 'strict' });
  assertRejected(t, await bearer(token), 'TOKEN_INVALID');
});

t.test('wrong iss or aud', async (t) => {
  const cases: [string, Overrides][] = [
    ['iss of another issuer', { iss: 'http://evil.test' }],
    ['iss with a trailing slash', { iss: `${config.issuer}/` }],
    ['iss a different case', { iss: config.issuer.toUpperCase() }],
    ['iss an array', { iss: [config.issuer] }],
    ['aud of another service', { aud: 'http://other-service.test' }],
    ['aud an array without ours', { aud: ['http://other-service.test'] }],
    ['aud empty', { aud: '' }],
  ];
  for (const [label, overrides] of cases) {
    const token = await mintWithOurKey(keysDir, claimsFor(overrides));
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', label);
  }
});

t.test('each required claim missing: TOKEN_INVALID', async (t) => {
  for (const claim of ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid', 'roles', 'ver', 'amr']) {
    const token = await mintWithOurKey(keysDir, claimsFor({ [claim]: undefined }));
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', `no ${claim}`);
  }
});

t.test('claims of the wrong type or form: TOKEN_INVALID', async (t) => {
  const nowSec = Math.floor(clock.now() / 1000);
  const cases: [string, Overrides][] = [
    ['roles a string', { roles: 'admin' }],
    ['roles holding a number', { roles: [1] }],
    ['sub a number', { sub: 42 }],
    ['sid a number', { sid: 42 }],
    ['jti not a UUIDv7', { jti: '6f1c1b4e-2a63-4d3f-9b7e-2f2b1c9a8e11' }],
    ['jti a number', { jti: 7 }],
    ['exp a string', { exp: String(nowSec + 900) }],
    ['iat a string', { iat: String(nowSec) }],
    ['nbf a string', { nbf: String(nowSec) }],
    ['ver a string', { ver: '0' }],
    ['ver negative', { ver: -1 }],
    ['ver a fraction', { ver: 0.5 }],
  ];
  for (const [label, overrides] of cases) {
    const token = await mintWithOurKey(keysDir, claimsFor(overrides));
    assertRejected(t, await bearer(token), 'TOKEN_INVALID', label);
  }
});

t.test('nbf: in the future beyond the tolerance is TOKEN_INVALID; within it or past is fine', async (t) => {
  const nowSec = Math.floor(clock.now() / 1000);
  const future = await mintWithOurKey(keysDir, claimsFor({ nbf: nowSec + config.clockTolerance + 30 }));
  assertRejected(t, await bearer(future), 'TOKEN_INVALID', 'nbf in a minute');
  const justBeyond = await mintWithOurKey(keysDir, claimsFor({ nbf: nowSec + config.clockTolerance + 1 }));
  assertRejected(t, await bearer(justBeyond), 'TOKEN_INVALID', 'nbf just beyond the tolerance');
  const within = await mintWithOurKey(keysDir, claimsFor({ nbf: nowSec + config.clockTolerance - 10 }));
  assertOk(t, await bearer(within), alice.userId, 'nbf within the tolerance');
  const past = await mintWithOurKey(keysDir, claimsFor({ nbf: nowSec - 60 }));
  assertOk(t, await bearer(past), alice.userId, 'nbf in the past');
});

t.test('iat: far in the future is TOKEN_INVALID; within the tolerance is fine', async (t) => {
  const nowSec = Math.floor(clock.now() / 1000);
  const far = await mintWithOurKey(keysDir, claimsFor({ iat: nowSec + 3600, exp: nowSec + 4500 }));
  assertRejected(t, await bearer(far), 'TOKEN_INVALID', 'iat in an hour');
  const beyond = await mintWithOurKey(keysDir, claimsFor({ iat: nowSec + config.clockTolerance + 1 }));
  assertRejected(t, await bearer(beyond), 'TOKEN_INVALID', 'iat just beyond the tolerance');
  const within = await mintWithOurKey(keysDir, claimsFor({ iat: nowSec + config.clockTolerance - 10 }));
  assertOk(t, await bearer(within), alice.userId, 'iat within the tolerance');
});

t.test('exp: TOKEN_EXPIRED just beyond the tolerance, accepted inside it', async (t) => {
  t.equal(config.clockTolerance, 30);
  const nowSec = Math.floor(clock.now() / 1000);
  const expired = await mintWithOurKey(keysDir, claimsFor({ iat: nowSec - 1000, exp: nowSec - 31 }));
  assertRejected(t, await bearer(expired), 'TOKEN_EXPIRED', 'expired 31 s ago');
  const long = await mintWithOurKey(keysDir, claimsFor({ iat: nowSec - 100_000, exp: nowSec - 90_000 }));
  assertRejected(t, await bearer(long), 'TOKEN_EXPIRED', 'expired a day ago');
  const inside = await mintWithOurKey(keysDir, claimsFor({ iat: nowSec - 1000, exp: nowSec - 29 }));
  assertOk(t, await bearer(inside), alice.userId, 'expired 29 s ago, inside the tolerance');
});

t.test('exp of an issued token, by moving the clock', async (t) => {
  const session = await newSession();
  const start = clock.now();
  t.teardown(() => clock.set(start));
  const exp = (session.claims.exp as number) * 1000;
  clock.set(exp + 29_999);
  assertOk(t, await bearer(session.accessToken), session.userId, '29.999 s after exp');
  clock.set(exp + 30_001);
  assertRejected(t, await bearer(session.accessToken), 'TOKEN_EXPIRED', '30.001 s after exp');
  clock.set(start);
  assertOk(t, await bearer(session.accessToken), session.userId, 'back in time');
});

t.test('a refresh token is not an access token', async (t) => {
  assertRejected(t, await bearer(alice.refreshToken), 'TOKEN_INVALID', 'refresh token as Bearer');
  assertRejected(
    t,
    await me({}, { '__Host-access_token': alice.refreshToken }),
    'TOKEN_INVALID',
    'refresh token as the access cookie',
  );
  const cookieLogin = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: alice.email, password: 'correct horse battery staple', transport: 'cookie' },
  });
  const refreshCookie = cookieLogin.cookies.find((cookie) => cookie.name === '__Secure-refresh_token');
  t.ok(refreshCookie);
  assertRejected(
    t,
    await me({}, { '__Secure-refresh_token': refreshCookie?.value ?? '' }),
    'TOKEN_MISSING',
    'the refresh cookie alone is no access token',
  );
});

t.test('garbage bearer values: TOKEN_INVALID, never a 500', async (t) => {
  const header = encodeSegment({ alg: 'RS256', typ: 'at+jwt', kid: our.kid });
  const payload = encodeSegment(claimsFor());
  const values = [
    'garbage',
    'a.b.c',
    'a.b',
    'a..c',
    '...',
    '....',
    `${header}.${payload}`,
    `${header}.${payload}.`,
    `${header}.${payload}.sig.extra`,
    `${Buffer.from('not json').toString('base64url')}.${payload}.c2ln`,
    `${header}.${Buffer.from('not json').toString('base64url')}.c2ln`,
    `${encodeSegment([1, 2])}.${payload}.c2ln`,
    `${encodeSegment('a string')}.${payload}.c2ln`,
    `${header}.${encodeSegment(null)}.c2ln`,
    `${header}.${encodeSegment([])}.c2ln`,
    'eyJhbGciOiJSUzI1NiJ9',
    'a'.repeat(8000),
    `${alice.accessToken}.`,
    `.${alice.accessToken}`,
    `${alice.accessToken} extra`,
    alice.accessToken.replaceAll('-', '+').replaceAll('_', '/'),
    '%00%00',
    '"quoted"',
    '{}',
    'Bearer',
    `Bearer ${alice.accessToken}`,
    'null',
    'undefined',
  ];
  for (const value of values) {
    assertRejected(t, await me({ authorization: `Bearer ${value}` }), 'TOKEN_INVALID', value.slice(0, 40));
  }
  for (const value of ['garbage', 'a.b.c', `${header}.${payload}.`]) {
    assertRejected(t, await me({}, { '__Host-access_token': value }), 'TOKEN_INVALID', `cookie ${value.slice(0, 20)}`);
  }
});

t.test('Bearer wins over the access cookie', async (t) => {
  const bob = await newSession();
  assertOk(
    t,
    await me({ authorization: `Bearer ${bob.accessToken}` }, { '__Host-access_token': alice.accessToken }),
    bob.userId,
    'Bearer of bob, cookie of alice',
  );
  assertOk(
    t,
    await me({ authorization: `Bearer ${alice.accessToken}` }, { '__Host-access_token': 'garbage' }),
    alice.userId,
    'valid Bearer, garbage cookie',
  );
  assertRejected(
    t,
    await me({ authorization: 'Bearer garbage' }, { '__Host-access_token': alice.accessToken }),
    'TOKEN_INVALID',
    'garbage Bearer, valid cookie',
  );
});

t.test('the access cookie alone authenticates GET /users/me', async (t) => {
  const login = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: alice.email, password: 'correct horse battery staple', transport: 'cookie' },
  });
  const access = login.cookies.find((cookie) => cookie.name === '__Host-access_token');
  t.ok(access?.value);
  assertOk(t, await me({}, { '__Host-access_token': access?.value ?? '' }), alice.userId, 'cookie only');
  assertRejected(
    t,
    await me({}, { access_token: access?.value ?? '' }),
    'TOKEN_MISSING',
    'the unprefixed name is not read while COOKIE_SECURE=true',
  );
});

t.test('the deny-list: jti, sid and the user minimum token version', async (t) => {
  const nowMs = clock.now();
  const ttl = 60_000;
  const session = await newSession();
  const jti = session.claims.jti as string;
  await ctx.redis.set(ctx.redisKey(denyKey.token(jti)), '1', 'PX', ttl);
  assertRejected(t, await bearer(session.accessToken), 'TOKEN_REVOKED', 'jti deny-listed');

  const other = await newSession();
  assertOk(t, await bearer(other.accessToken), other.userId, 'another token of another session');
  await ctx.redis.set(ctx.redisKey(denyKey.session(other.sessionId)), '1', 'PX', ttl);
  assertRejected(t, await bearer(other.accessToken), 'TOKEN_REVOKED', 'sid deny-listed');
  const sameSession = await mintWithOurKey(keysDir, claimsFor({}, other));
  assertRejected(t, await bearer(sameSession), 'TOKEN_REVOKED', 'any token of that session');

  const third = await newSession();
  // The version decides, whatever the issue times: no clock takes part.
  const below = await mintWithOurKey(keysDir, claimsFor({ jti: uuidv7(nowMs + 1), ver: 2 }, third));
  const at = await mintWithOurKey(keysDir, claimsFor({ jti: uuidv7(nowMs - 1), ver: 3 }, third));
  const above = await mintWithOurKey(keysDir, claimsFor({ jti: uuidv7(nowMs), ver: 4 }, third));
  await ctx.redis.set(ctx.redisKey(denyKey.user(third.userId)), '3', 'PX', ttl);
  assertRejected(t, await bearer(below), 'TOKEN_REVOKED', 'a version below the minimum, even if issued later');
  assertOk(t, await bearer(at), third.userId, 'the minimum version, even if issued earlier');
  assertOk(t, await bearer(above), third.userId, 'a higher version');
});

t.test('Redis unreachable: 503 SERVICE_UNAVAILABLE, never let through', async (t) => {
  const servers = await testServers();
  const target = new URL(servers.redisUrl);
  const proxy = await startProxy(target.hostname, Number(target.port || 6379));
  t.teardown(() => proxy.close());
  const cut = await buildTestApp(t, { env: { REDIS_URL: proxy.url(servers.redisUrl) } });
  const session = await newSession(cut.app);
  const call = () => me({ authorization: `Bearer ${session.accessToken}` }, {}, cut.app);
  assertOk(t, await call(), session.userId, 'through the proxy');

  await proxy.cut();
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const response = await call();
    t.equal(response.statusCode, 503, `attempt ${attempt + 1}: 503`);
    t.strictSame(response.json(), {
      statusCode: 503,
      code: 'SERVICE_UNAVAILABLE',
      error: 'Service Unavailable',
      message: response.json().message,
    });
    t.notMatch(response.body, /redis|ECONNREFUSED|stream/i, 'no internals in the message');
  }
  // Still verified first: a bad token is 401 whether or not Redis answers.
  assertRejected(t, await me({ authorization: 'Bearer garbage' }, {}, cut.app), 'TOKEN_INVALID', 'garbage while cut');

  await proxy.restore();
  let recovered: LightMyRequestResponse | undefined;
  for (let waited = 0; waited < 10_000; waited += 200) {
    recovered = await call();
    if (recovered.statusCode === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.equal(recovered?.statusCode, 200, 'answers again once Redis is back');
});

t.test('CSRF for cookie-authenticated unsafe requests (authenticate on a bare Fastify)', async (t) => {
  const bare = Fastify({ logger: false });
  t.teardown(() => bare.close());
  await bare.register(configPlugin, { config, clock });
  await bare.register(metricsPlugin);
  await bare.register(errorHandlerPlugin);
  await bare.register(securityPlugin);
  await bare.register(storePlugin);
  await bare.register(denyListPlugin);
  // No database here: the deny-list rebuilds from an empty source.
  bare.denyList.setSource(async () => []);
  await bare.register(keysPlugin);
  await bare.register(secretsPlugin);
  await bare.register(cookiesPlugin);
  await bare.register(accessTokensPlugin);
  await bare.register(authenticatePlugin);
  const handler = async (request: Parameters<typeof principalOf>[0]) => ({ userId: principalOf(request).userId });
  bare.post('/probe', { onRequest: bare.authenticate }, handler);
  bare.get('/probe', { onRequest: bare.authenticate }, handler);
  await bare.ready();

  const login = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: alice.email, password: 'correct horse battery staple', transport: 'cookie' },
  });
  const cookie = (name: string) => login.cookies.find((item) => item.name === name)?.value ?? '';
  const cookies = {
    '__Host-access_token': cookie('__Host-access_token'),
    '__Host-csrf_token': cookie('__Host-csrf_token'),
  };
  const post = (headers: Record<string, string>, sent: Record<string, string> = cookies) =>
    bare.inject({ method: 'POST', url: '/probe', headers, cookies: sent });

  const missing = await post({});
  t.equal(missing.statusCode, 403, 'no X-CSRF-Token');
  t.equal(missing.json().code, 'CSRF_FAILED');
  const wrong = await post({ 'x-csrf-token': 'not-the-cookie' });
  t.equal(wrong.statusCode, 403, 'a mismatched X-CSRF-Token');
  t.equal(wrong.json().code, 'CSRF_FAILED');
  const noCookie = await post(
    { 'x-csrf-token': cookies['__Host-csrf_token'] },
    { '__Host-access_token': cookies['__Host-access_token'] },
  );
  t.equal(noCookie.statusCode, 403, 'a header without the csrf cookie');
  const matching = await post({ 'x-csrf-token': cookies['__Host-csrf_token'] });
  t.equal(matching.statusCode, 200, 'matching header');
  t.strictSame(matching.json(), { userId: alice.userId });

  const viaBearer = await post({ authorization: `Bearer ${alice.accessToken}` });
  t.equal(viaBearer.statusCode, 200, 'Bearer needs no CSRF header even with cookies riding along');
  t.strictSame(viaBearer.json(), { userId: alice.userId });
  const get = await bare.inject({ method: 'GET', url: '/probe', cookies });
  t.equal(get.statusCode, 200, 'safe methods need no CSRF header');
  const invalid = await post({}, { '__Host-access_token': 'garbage', '__Host-csrf_token': 'x' });
  t.equal(invalid.statusCode, 401, 'the token is verified first');
  t.equal(invalid.json().code, 'TOKEN_INVALID');
});
