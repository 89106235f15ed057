// A reload replaces the whole ring or nothing: a corrupt or half-written file, an emptied folder or a failed
// preparation keeps the last good ring.
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { generatePrivateKeyPem, loadKeyRing, removeKey, toSigningKey, writeNewKey } from '../../src/keys/key-ring.js';
import { LiveKeyRing, reloadKeyRing } from '../../src/keys/live-key-ring.js';

const now = Date.UTC(2026, 10, 23, 12);
const pem = generatePrivateKeyPem('ES256');

async function setUp(t: Test) {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-reload-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'first.pem'), pem, { mode: 0o600 });
  const load = () => loadKeyRing({ keysDir: dir, algorithm: 'ES256', generateIfEmpty: false, now });
  const live = new LiveKeyRing(await load());
  return { dir, load, live, firstKid: toSigningKey(pem, '', 0).kid };
}

t.test('an unchanged folder keeps the same ring object', async (t) => {
  const { live, load } = await setUp(t);
  const before = live.current;
  t.same(await reloadKeyRing(live, load), { status: 'unchanged' });
  t.equal(live.current, before);
});

t.test('a new key is added whole, with its activation time', async (t) => {
  const { dir, live, load, firstKid } = await setUp(t);
  const added = await writeNewKey(dir, 'ES256', now + 60_000);
  const outcome = await reloadKeyRing(live, load);
  t.match(outcome, { status: 'replaced', change: { added: [added.kid], removed: [], rescheduled: [] } });
  t.same(
    live.keys.map((key) => key.kid),
    [firstKid, added.kid],
  );
  t.equal(live.active.kid, firstKid, 'published, not signing before its time');

  await removeKey(dir, live.find(firstKid) as never);
  t.match(await reloadKeyRing(live, load), { status: 'replaced', change: { removed: [firstKid] } });
  t.same(
    live.keys.map((key) => key.kid),
    [added.kid],
  );
});

for (const [what, damage] of [
  ['a corrupt .pem', (dir: string) => writeFile(path.join(dir, 'broken.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA')],
  ['a half-written keys.json', (dir: string) => writeFile(path.join(dir, 'keys.json'), '{"keys": [{"kid": "ab')],
  ['a keys.json of the wrong shape', (dir: string) => writeFile(path.join(dir, 'keys.json'), '{"keys": {}}')],
  ['an emptied folder', (dir: string) => unlink(path.join(dir, 'first.pem'))],
] as const) {
  t.test(`${what} keeps the last good ring, and the next good reload is taken`, async (t) => {
    const { dir, live, load, firstKid } = await setUp(t);
    const before = live.current;
    await damage(dir);
    const outcome = await reloadKeyRing(live, load);
    t.equal(outcome.status, 'failed');
    t.ok(outcome.status === 'failed' && outcome.error.message, 'with the reason');
    t.equal(live.current, before, 'the ring is unchanged');
    t.equal(live.active.kid, firstKid, 'and still signs');

    await rm(dir, { recursive: true, force: true });
    await writeNewKey(dir, 'ES256', now - 1);
    t.equal((await reloadKeyRing(live, load)).status, 'replaced', 'a repaired folder is picked up');
  });
}

t.test('a preparer that fails cancels the swap', async (t) => {
  const { dir, live, load } = await setUp(t);
  const before = live.current;
  live.beforeReplace(async () => {
    throw new Error('cannot ready a signer');
  });
  await writeNewKey(dir, 'ES256', now + 60_000);
  t.match(await reloadKeyRing(live, load), { status: 'failed', error: { message: 'cannot ready a signer' } });
  t.equal(live.current, before);
});

t.test('a key written by writeNewKey never appears without its activation time', async (t) => {
  // The entry goes first, the file second (linked into place whole): a reader between the two sees no new key.
  const { dir } = await setUp(t);
  const key = await writeNewKey(dir, 'ES256', now + 60_000);
  const ring = await loadKeyRing({ keysDir: dir, algorithm: 'ES256', generateIfEmpty: false, now });
  t.equal(ring.find(key.kid)?.activatesAt, now + 60_000);
});
