import { createHash, createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, importPKCS8, type JWK, jwtVerify, SignJWT } from 'jose';
import t from 'tap';
import { buildTestApp, makeKeysDir } from '../helpers/app.js';

t.test('GET /.well-known/jwks.json', async (t) => {
  const keysDir = await makeKeysDir(t);
  const { app } = await buildTestApp(t, { keysDir });
  const response = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });

  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^application\/json/);
  t.equal(response.headers['cache-control'], 'public, max-age=600');

  const body = response.json() as { keys: Record<string, unknown>[] };
  t.same(Object.keys(body), ['keys']);
  t.equal(body.keys.length, 1);
  const [jwk] = body.keys as [Record<string, unknown>];
  t.same(Object.keys(jwk).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use'], 'public members only');
  t.match(jwk, { kty: 'RSA', use: 'sig', alg: 'RS256', kid: String, n: /^[A-Za-z0-9_-]+$/, e: 'AQAB' });
  for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) t.notOk(member in jwk, `no ${member}`);

  t.test('kid is the RFC 7638 thumbprint of the provisioned key', async (t) => {
    const pem = await readFile(path.join(keysDir, 'test.pem'), 'utf8');
    const expected = await calculateJwkThumbprint(createPublicKey(pem).export({ format: 'jwk' }) as JWK, 'sha256');
    t.equal(jwk.kid, expected);
    t.equal(await calculateJwkThumbprint(jwk as JWK, 'sha256'), jwk.kid, 'and of the published key itself');
  });

  t.test('a resource server verifies our tokens offline with it', async (t) => {
    const signingKey = await importPKCS8(app.keys.active.privateKeyPem, 'RS256');
    const token = await new SignJWT({ sid: 'session', roles: ['user'] })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: app.keys.active.kid })
      .setIssuer(app.config.issuer)
      .setAudience(app.config.audience)
      .setSubject('user')
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(signingKey);
    const { payload } = await jwtVerify(token, createLocalJWKSet(body as { keys: JWK[] }), {
      issuer: app.config.issuer,
      audience: app.config.audience,
      algorithms: ['RS256'],
    });
    t.equal(payload.sub, 'user');
  });

  t.test('the response never carries key material beyond the JWKS', async (t) => {
    t.notMatch(response.body, /PRIVATE KEY|BEGIN/);
  });
});

t.test('max-age follows JWKS_MAX_AGE', async (t) => {
  const { app } = await buildTestApp(t, { env: { JWKS_MAX_AGE: '120' } });
  const response = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  t.equal(response.headers['cache-control'], 'public, max-age=120');
});

t.test('a strong ETag, and 304 Not Modified to a matching If-None-Match', async (t) => {
  const { app } = await buildTestApp(t, { env: { JWKS_MAX_AGE: '120' } });
  const get = (headers: Record<string, string> = {}) =>
    app.inject({ method: 'GET', url: '/.well-known/jwks.json', headers });
  const full = await get();
  const etag = String(full.headers.etag);
  t.equal(etag, `"${createHash('sha256').update(full.rawPayload).digest('base64url')}"`, 'a hash of the body bytes');
  t.equal((await get()).headers.etag, etag, 'stable while the keys are');

  for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const cached = await get({ 'if-none-match': ifNoneMatch });
    t.equal(cached.statusCode, 304, `If-None-Match: ${ifNoneMatch}`);
    t.equal(cached.body, '', 'no body');
    t.equal(cached.headers.etag, etag);
    t.equal(cached.headers['cache-control'], 'public, max-age=120', 'max-age kept');
  }
  const stale = await get({ 'if-none-match': '"not-the-current-one"' });
  t.equal(stale.statusCode, 200, 'another ETag gets the set');
  t.equal(stale.body, full.body);
});
