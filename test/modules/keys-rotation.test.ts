// Key algorithms, rotation without a restart (by keys.json, never file times), and the CORS allow-list.
import { cp, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import t, { type Test } from 'tap';
import { generatePrivateKeyPem, toSigningKey } from '../../src/keys/key-ring.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { TestClock } from '../helpers/clock.js';

const password = 'correct horse battery staple';
let sequence = 0;

async function emptyDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-rotation-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function login({ app }: TestApp): Promise<string> {
  const email = `rotation-${process.pid}-${sequence++}@example.com`;
  await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password } });
  const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } });
  return response.json().accessToken;
}

for (const [alg, kty] of [
  ['ES256', 'EC'],
  ['EdDSA', 'OKP'],
] as const) {
  t.test(`JWT_ALG=${alg}: a generated ${kty} key signs, verifies, and is published`, async (t) => {
    const context = await buildTestApp(t, { env: { JWT_ALG: alg }, keysDir: await emptyDir(t) });
    const token = await login(context);
    t.equal(decodeProtectedHeader(token).alg, alg);
    const me = await context.app.inject({
      method: 'GET',
      url: '/users/me',
      headers: { authorization: `Bearer ${token}` },
    });
    t.equal(me.statusCode, 200, 'our verifier accepts it');
    const jwks = (await context.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    t.same(
      jwks.keys.map((key: { kty: string; alg: string }) => [key.kty, key.alg]),
      [[kty, alg]],
    );
    t.notOk('d' in jwks.keys[0], 'no private member');
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      issuer: context.config.issuer,
      audience: context.config.audience,
      typ: 'at+jwt',
      algorithms: [alg],
    });
    t.ok(payload.sub, 'jose verifies it against the JWKS');
  });
}

t.test(
  'rotation: a new key is published at once and signs from its recorded activation time, with no restart; ' +
    'file times (touched, or reset by a copy) change nothing',
  async (t) => {
    const dir = await emptyDir(t);
    const clock = new TestClock(Date.UTC(2026, 10, 23, 12));
    const oldPem = generatePrivateKeyPem('RS256');
    const newPem = generatePrivateKeyPem('RS256');
    const oldKid = toSigningKey(oldPem, '', 0).kid;
    const newKid = toSigningKey(newPem, '', 0).kid;
    await writeFile(path.join(dir, 'old.pem'), oldPem, { mode: 0o600 });
    await writeFile(path.join(dir, 'new.pem'), newPem, { mode: 0o600 });
    // The old key has signed for two days; the new one was just added by keys:generate (KEY_ACTIVATION_DELAY 900).
    const at = (ms: number) => new Date(ms).toISOString();
    await writeFile(
      path.join(dir, 'keys.json'),
      JSON.stringify({
        keys: [
          { kid: oldKid, file: 'old.pem', activatesAt: at(clock.now() - 2 * 86_400_000) },
          { kid: newKid, file: 'new.pem', activatesAt: at(clock.now() + 900_000) },
        ],
      }),
    );
    // The files' times say the opposite: old.pem touched just now, new.pem two days old.
    const twoDaysAgo = (clock.now() - 2 * 86_400_000) / 1000;
    await utimes(path.join(dir, 'old.pem'), clock.now() / 1000, clock.now() / 1000);
    await utimes(path.join(dir, 'new.pem'), twoDaysAgo, twoDaysAgo);
    // And a copy of the folder without -p: every file gets the copy's time.
    const copy = path.join(await emptyDir(t), 'keys');
    await cp(dir, copy, { recursive: true });

    const context = await buildTestApp(t, { clock, keysDir: dir, env: { KEY_ACTIVATION_DELAY: '900' } });
    const copied = await buildTestApp(t, { clock, keysDir: copy, env: { KEY_ACTIVATION_DELAY: '900' } });
    const jwks = (await context.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    t.same(jwks.keys.map((key: { kid: string }) => key.kid).sort(), [oldKid, newKid].sort(), 'both keys are published');

    const before = await login(context);
    t.equal(decodeProtectedHeader(before).kid, oldKid, 'the old key signs until the new one activates');
    t.equal(decodeProtectedHeader(await login(copied)).kid, oldKid, 'the copied folder signs with the same key');

    clock.advance(899_000);
    t.equal(decodeProtectedHeader(await login(context)).kid, oldKid, 'still the old key just before activation');

    clock.advance(2_000);
    const after = await login(context);
    t.equal(decodeProtectedHeader(after).kid, newKid, 'the new key signs once its activation time has passed');
    t.equal(decodeProtectedHeader(await login(copied)).kid, newKid, 'on the copy too, at the same moment');
    for (const token of [before, after]) {
      const me = await context.app.inject({
        method: 'GET',
        url: '/users/me',
        headers: { authorization: `Bearer ${token}` },
      });
      t.equal(me.statusCode, 200, 'tokens of both keys verify');
    }
  },
);

t.test('CORS: only listed origins get CORS headers, with credentials', async (t) => {
  const { app } = await buildTestApp(t, { env: { CORS_ORIGINS: 'https://app.example.com' } });
  const preflight = (origin: string) =>
    app.inject({
      method: 'OPTIONS',
      url: '/auth/login',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
  const allowed = await preflight('https://app.example.com');
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
  t.equal(allowed.headers['access-control-allow-credentials'], 'true');
  const refused = await preflight('https://evil.example.com');
  t.notOk(refused.headers['access-control-allow-origin'], 'an unlisted origin gets no allow-origin');

  const { app: closed } = await buildTestApp(t);
  const none = await closed.inject({
    method: 'GET',
    url: '/health/live',
    headers: { origin: 'https://app.example.com' },
  });
  t.notOk(none.headers['access-control-allow-origin'], 'with no CORS_ORIGINS, no CORS headers at all');
});
