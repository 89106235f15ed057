import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import t, { type Test } from 'tap';
import {
  generatePrivateKeyPem,
  type JwtAlgorithm,
  KeyError,
  type LoadKeysOptions,
  loadKeyRing,
  toSigningKey,
  writeNewKey,
} from '../../src/keys/key-ring.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

// RSA generation is slow: a few keys for the whole file.
const rsaOld = generatePrivateKeyPem('RS256');
const rsaNew = generatePrivateKeyPem('RS256');

async function keysDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-keyring-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a key file and, unless `activatesAt` is undefined, its entry in keys.json (as keys:generate does). */
async function putKey(dir: string, name: string, pem: string, activatesAt: number | undefined): Promise<void> {
  await writeFile(path.join(dir, name), pem, { mode: 0o600 });
  if (activatesAt === undefined) return;
  const manifestFile = path.join(dir, 'keys.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8').catch(() => '{"keys":[]}')) as {
    keys: { kid: string }[];
  };
  const kid = toSigningKey(pem, name, 0).kid;
  manifest.keys = manifest.keys.filter((entry) => entry.kid !== kid);
  manifest.keys.push({ kid, file: name, activatesAt: new Date(activatesAt).toISOString() } as { kid: string });
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
}

/** Sets a file's modification time, as copying, restoring or mounting it would. */
async function setMtime(dir: string, name: string, at: number): Promise<void> {
  await utimes(path.join(dir, name), at / 1000, at / 1000);
}

function options(dir: string, overrides: Partial<LoadKeysOptions> = {}): LoadKeysOptions {
  return {
    keysDir: dir,
    algorithm: 'RS256',
    generateIfEmpty: false,
    now: Date.now(),
    ...overrides,
  };
}

/** The public JWK computed independently of the key ring (node:crypto), for jose's thumbprint. */
function publicJwkOf(pem: string): JWK {
  return createPublicKey(pem).export({ format: 'jwk' }) as JWK;
}

t.test('kid is the RFC 7638 thumbprint of the public key', async (t) => {
  const cases: [JwtAlgorithm, string][] = [
    ['RS256', rsaOld],
    ['ES256', generatePrivateKeyPem('ES256')],
    ['EdDSA', generatePrivateKeyPem('EdDSA')],
  ];
  for (const [alg, pem] of cases) {
    const key = toSigningKey(pem, `${alg}.pem`, Date.now());
    t.equal(key.alg, alg);
    t.equal(key.kid, await calculateJwkThumbprint(publicJwkOf(pem), 'sha256'), `${alg}: kid matches jose`);
    t.equal(key.publicJwk.kid, key.kid);
  }
});

t.test('the JWKS holds only public members', async (t) => {
  const dir = await keysDir(t);
  await putKey(dir, 'a.pem', rsaOld, Date.now() - DAY_MS);
  await putKey(dir, 'b.pem', rsaNew, Date.now());
  const ring = await loadKeyRing(options(dir));
  const { keys } = ring.jwks();
  t.equal(keys.length, 2);
  for (const jwk of keys) {
    t.same(Object.keys(jwk).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use'], `${jwk.kid}: exactly the public members`);
    for (const member of privateMembers) t.notOk(member in jwk, `${jwk.kid}: no ${member}`);
    t.match(jwk, { kty: 'RSA', use: 'sig', alg: 'RS256' });
  }
  t.notMatch(JSON.stringify(ring.jwks()), /PRIVATE KEY/);
});

t.test('an empty folder gets a development key, written with mode 0600', async (t) => {
  const dir = path.join(await keysDir(t), 'nested', 'keys');
  const generated: string[] = [];
  const ring = await loadKeyRing(
    options(dir, { generateIfEmpty: true, onGenerated: (key) => generated.push(key.kid) }),
  );
  t.same(generated, [ring.active.kid], 'the generation is reported');
  const files = await readdir(dir);
  t.same(files.sort(), [`${ring.active.kid}.pem`, 'keys.json'].sort(), 'one key file, named by its kid, and keys.json');
  const mode = (await stat(path.join(dir, `${ring.active.kid}.pem`))).mode & 0o777;
  t.equal(mode, 0o600, 'only the owner can read the private key');
  t.equal(ring.active.kid, await calculateJwkThumbprint(publicJwkOf(ring.active.privateKeyPem), 'sha256'));

  const again = await loadKeyRing(options(dir, { generateIfEmpty: true, onGenerated: () => t.fail('regenerated') }));
  t.equal(again.active.kid, ring.active.kid, 'the next boot reuses the key');
  t.equal((await readdir(dir)).length, 2);
});

t.test('production (no generation) refuses an empty folder', async (t) => {
  const dir = await keysDir(t);
  await t.rejects(loadKeyRing(options(dir)), KeyError);
  await t.rejects(loadKeyRing(options(dir)), { message: /no RS256 private key/ });
  t.same(await readdir(dir), [], 'no key was invented');
  await t.rejects(loadKeyRing(options(path.join(dir, 'missing'))), KeyError, 'a missing folder too');
});

t.test('an RSA key shorter than 2048 bits is rejected', async (t) => {
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 })
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();
  t.throws(() => toSigningKey(weak, 'weak.pem', Date.now()), { name: 'KeyError', message: /1024 bits/ });
  const dir = await keysDir(t);
  await putKey(dir, 'weak.pem', weak, undefined);
  await t.rejects(loadKeyRing(options(dir, { generateIfEmpty: true })), KeyError, 'the ring refuses to load it');
});

t.test('a file that is not a private key is rejected', async (t) => {
  const dir = await keysDir(t);
  await writeFile(path.join(dir, 'broken.pem'), 'not a key');
  await t.rejects(loadKeyRing(options(dir, { generateIfEmpty: true })), { name: 'KeyError', message: /broken\.pem/ });
});

t.test('activation: a key signs only once its recorded activation time has passed', async (t) => {
  const now = Date.now();

  t.test('an old key and a brand-new key: the old one signs, both are published', async (t) => {
    const dir = await keysDir(t);
    await putKey(dir, 'old.pem', rsaOld, now - DAY_MS);
    await putKey(dir, 'new.pem', rsaNew, now + 900_000);
    const ring = await loadKeyRing(options(dir, { now }));
    const oldKid = toSigningKey(rsaOld, '', 0).kid;
    const newKid = toSigningKey(rsaNew, '', 0).kid;
    t.equal(ring.active.kid, oldKid, 'the old key signs');
    t.same(
      ring
        .jwks()
        .keys.map((key) => key.kid)
        .sort(),
      [oldKid, newKid].sort(),
      'both are published',
    );
    t.ok(ring.find(newKid), 'tokens signed by the new key already verify');
  });

  t.test('once its activation time has passed, the newer key signs', async (t) => {
    const dir = await keysDir(t);
    await putKey(dir, 'old.pem', rsaOld, now - 2 * DAY_MS);
    await putKey(dir, 'new.pem', rsaNew, now - DAY_MS);
    const ring = await loadKeyRing(options(dir, { now }));
    t.equal(ring.active.kid, toSigningKey(rsaNew, '', 0).kid);
    t.equal(ring.keys.length, 2, 'the old key is still published for tokens it signed');
  });

  t.test('with only a key not yet active, it signs', async (t) => {
    const dir = await keysDir(t);
    await putKey(dir, 'new.pem', rsaNew, now + 900_000);
    const ring = await loadKeyRing(options(dir, { now }));
    t.equal(ring.active.kid, toSigningKey(rsaNew, '', 0).kid);
  });
});

t.test('the recorded activation time decides which key signs, never the file modification time', async (t) => {
  const now = Date.now();
  const oldKid = toSigningKey(rsaOld, '', 0).kid;
  const newKid = toSigningKey(rsaNew, '', 0).kid;

  t.test('the older-activated key touched to be the newest file: it still signs', async (t) => {
    const dir = await keysDir(t);
    // old activated two days ago; new was added a minute ago and activates in 14 minutes.
    await putKey(dir, 'old.pem', rsaOld, now - 2 * DAY_MS);
    await putKey(dir, 'new.pem', rsaNew, now - 60_000 + 900_000);
    // The files' times say the opposite: new.pem looks two days old, old.pem brand new (a copy, a restore).
    await setMtime(dir, 'old.pem', now);
    await setMtime(dir, 'new.pem', now - 2 * DAY_MS);
    const ring = await loadKeyRing(options(dir, { now }));
    t.equal(ring.active.kid, oldKid, 'the key activated two days ago signs');
    t.same(ring.keys.map((key) => key.kid).sort(), [oldKid, newKid].sort(), 'both are published');
    const later = await loadKeyRing(options(dir, { now: now - 60_000 + 900_000 }));
    t.equal(later.active.kid, newKid, 'the new key signs from its recorded activation time');
  });

  t.test('a key recorded as active signs, however young its file looks', async (t) => {
    const dir = await keysDir(t);
    await putKey(dir, 'old.pem', rsaOld, now - 2 * DAY_MS);
    await putKey(dir, 'new.pem', rsaNew, now - DAY_MS);
    await setMtime(dir, 'old.pem', now - 2 * DAY_MS);
    await setMtime(dir, 'new.pem', now);
    t.equal((await loadKeyRing(options(dir, { now }))).active.kid, newKid);
  });

  t.test('one key without a recorded time counts as active since ever (the oldest)', async (t) => {
    const dir = await keysDir(t);
    // A folder from before keys.json, plus a key added by keys:generate that is not active yet.
    await putKey(dir, 'legacy.pem', rsaOld, undefined);
    await putKey(dir, 'new.pem', rsaNew, now + 900_000);
    await setMtime(dir, 'new.pem', now - 2 * DAY_MS);
    t.equal((await loadKeyRing(options(dir, { now }))).active.kid, oldKid, 'the unrecorded key signs until then');
    t.equal((await loadKeyRing(options(dir, { now: now + 900_000 }))).active.kid, newKid, 'then the new key');
  });

  t.test('two keys without a recorded time are ambiguous: refused, naming keys.json', async (t) => {
    const dir = await keysDir(t);
    await putKey(dir, 'a.pem', rsaOld, undefined);
    await putKey(dir, 'b.pem', rsaNew, undefined);
    await t.rejects(loadKeyRing(options(dir, { now })), { name: 'KeyError', message: /keys\.json \(a\.pem, b\.pem\)/ });
  });

  t.test('a malformed keys.json is refused', async (t) => {
    const dir = await keysDir(t);
    await putKey(dir, 'a.pem', rsaOld, undefined);
    await writeFile(path.join(dir, 'keys.json'), '{"keys": [{"kid": "x"}]}');
    await t.rejects(loadKeyRing(options(dir, { now })), { name: 'KeyError', message: /keys\.json: bad entry/ });
    await writeFile(path.join(dir, 'keys.json'), 'not json');
    await t.rejects(loadKeyRing(options(dir, { now })), { name: 'KeyError', message: /keys\.json: not JSON/ });
  });
});

t.test('writeNewKey records the activation time in keys.json; a generated development key signs at once', async (t) => {
  const dir = await keysDir(t);
  const now = Date.now();
  const first = await loadKeyRing(options(dir, { now, generateIfEmpty: true }));
  const added = await writeNewKey(dir, 'RS256', now + 900_000);
  const manifest = JSON.parse(await readFile(path.join(dir, 'keys.json'), 'utf8')) as {
    keys: { kid: string; file: string; activatesAt: string }[];
  };
  t.same(
    manifest.keys,
    [
      { kid: first.active.kid, file: `${first.active.kid}.pem`, activatesAt: new Date(now).toISOString() },
      { kid: added.kid, file: `${added.kid}.pem`, activatesAt: new Date(now + 900_000).toISOString() },
    ],
    'one entry per key, with its file and activation time',
  );
  t.equal((await loadKeyRing(options(dir, { now: now + 899_000 }))).active.kid, first.active.kid);
  t.equal((await loadKeyRing(options(dir, { now: now + 900_000 }))).active.kid, added.kid);
  // Every file touched: nothing changes.
  for (const file of await readdir(dir)) await utimes(path.join(dir, file), new Date(), new Date(0));
  t.equal((await loadKeyRing(options(dir, { now: now + 899_000 }))).active.kid, first.active.kid, 'mtimes are ignored');
});

t.test('a key of another algorithm is not published', async (t) => {
  const dir = await keysDir(t);
  await putKey(dir, 'rsa.pem', rsaOld, Date.now() - DAY_MS);
  await putKey(dir, 'ec.pem', generatePrivateKeyPem('ES256'), Date.now() - DAY_MS);
  await putKey(dir, 'ed.pem', generatePrivateKeyPem('EdDSA'), Date.now() - DAY_MS);
  const ring = await loadKeyRing(options(dir));
  t.same(
    ring.jwks().keys.map((key) => key.alg),
    ['RS256'],
  );
  t.equal(ring.active.alg, 'RS256');

  const ecOnly = await keysDir(t);
  await putKey(ecOnly, 'ec.pem', generatePrivateKeyPem('ES256'), Date.now() - DAY_MS);
  await t.rejects(loadKeyRing(options(ecOnly)), KeyError, 'an EC key does not satisfy JWT_ALG=RS256');
});

t.test('find() returns only keys of the ring', async (t) => {
  const dir = await keysDir(t);
  await putKey(dir, 'a.pem', rsaOld, Date.now() - DAY_MS);
  const ring = await loadKeyRing(options(dir));
  t.equal(ring.find(ring.active.kid), ring.active);
  t.equal(ring.find(toSigningKey(rsaNew, '', 0).kid), undefined, 'an unknown kid');
  t.equal(ring.find(undefined), undefined);
  t.equal(ring.find({ kid: ring.active.kid }), undefined, 'a non-string kid');
});
