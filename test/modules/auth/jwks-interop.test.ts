// Interoperability: a token our service issued verifies with an independent library (jose) fetching our JWKS
// over real HTTP, pinned to our issuer, audience, typ and algorithm; and jose rejects what our verifier rejects.
import { randomBytes } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import t from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import { attackerKey, decodeToken, signHs256, signRsa, tamperClaims } from '../../helpers/forge.js';

const { app, config } = await buildTestApp(t);
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
const baseUrl = `http://127.0.0.1:${address.port}`;
const jwksUrl = new URL('/.well-known/jwks.json', baseUrl);
const jwks = createRemoteJWKSet(jwksUrl);
const options = {
  issuer: config.issuer,
  audience: config.audience,
  typ: 'at+jwt',
  algorithms: ['RS256'],
};

const email = `interop-${randomBytes(5).toString('hex')}@example.com`;
const password = 'correct horse battery staple';

async function post(path: string, body: unknown) {
  return fetch(new URL(path, baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const registered = await post('/auth/register', { email, password });
if (registered.status !== 201) throw new Error(`register: ${await registered.text()}`);
const loginResponse = await post('/auth/login', { email, password });
const login = (await loginResponse.json()) as { accessToken: string; user: { id: string } };

t.test('the JWKS is served over HTTP with public members only', async (t) => {
  const response = await fetch(jwksUrl);
  t.equal(response.status, 200);
  t.match(response.headers.get('cache-control'), /^public, max-age=\d+$/);
  const body = (await response.json()) as { keys: Record<string, unknown>[] };
  t.ok(body.keys.length >= 1);
  for (const key of body.keys) {
    t.equal(key.kty, 'RSA');
    t.equal(key.use, 'sig');
    t.equal(key.alg, 'RS256');
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) t.notOk(secret in key, `no ${secret}`);
  }
  t.ok(
    body.keys.some((key) => key.kid === decodeProtectedHeader(login.accessToken).kid),
    "the token's kid is published",
  );
});

t.test('jose verifies a token from /auth/login against our JWKS URL, issuer and audience', async (t) => {
  t.equal(loginResponse.status, 200);
  const { payload, protectedHeader } = await jwtVerify(login.accessToken, jwks, options);
  t.equal(protectedHeader.alg, 'RS256');
  t.equal(protectedHeader.typ, 'at+jwt');
  t.equal(payload.iss, 'http://auth.test');
  t.equal(payload.iss, config.issuer);
  t.equal(payload.aud, config.audience);
  t.equal(payload.sub, login.user.id);
  t.strictSame(payload.roles, ['user']);
  t.type(payload.jti, 'string');
  t.type(payload.sid, 'string');
  t.equal((payload.exp ?? 0) - (payload.iat ?? 0), config.accessTokenTtl);

  // And our own verifier agrees, over the same HTTP server.
  const me = await fetch(new URL('/users/me', baseUrl), { headers: { authorization: `Bearer ${login.accessToken}` } });
  t.equal(me.status, 200);
});

t.test('jose, pinned the same way, rejects what our verifier rejects', async (t) => {
  const reject = async (label: string, token: string, overrides: Partial<typeof options> = {}) => {
    await t.rejects(jwtVerify(token, jwks, { ...options, ...overrides }), label);
  };
  await reject('another audience', login.accessToken, { audience: 'http://other-service.test' });
  await reject('another issuer', login.accessToken, { issuer: 'http://evil.test' });
  await reject('typ JWT expected', login.accessToken, { typ: 'JWT' });
  await reject('tampered roles', tamperClaims(login.accessToken, { roles: ['admin'] }));
  const { header, claims } = decodeToken(login.accessToken);
  const attacker = attackerKey();
  await reject('an attacker key under our kid', signRsa(header, claims, attacker.privateKey));
  const published = (await (await fetch(jwksUrl)).json()) as { keys: unknown[] };
  await reject(
    'HS256 with our JWK as the secret',
    signHs256({ ...header, alg: 'HS256' }, claims, JSON.stringify(published.keys[0])),
  );
  await t.rejects(
    jwtVerify(signRsa({ ...header, kid: attacker.kid }, claims, attacker.privateKey), jwks, options),
    errors.JWKSNoMatchingKey,
    'an unknown kid matches no key of our set',
  );
});
