// keys:retire's safety rule: only a key superseded for longer than its tokens' lifetime goes; never the active key,
// never one not yet signing, never one whose tokens may still be accepted.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { generatePrivateKeyPem, KeyRing, type SigningKey, toSigningKey } from '../../src/keys/key-ring.js';
import { retirementVerdicts } from '../../src/keys/retirement.js';
import { repoRoot } from '../helpers/server-process.js';

const MINUTE = 60_000;
const now = Date.UTC(2026, 10, 23, 12);
// ACCESS_TOKEN_TTL 900 + CLOCK_TOLERANCE 30.
const lifetimeMs = 930_000;
const pems = [generatePrivateKeyPem('EdDSA'), generatePrivateKeyPem('EdDSA'), generatePrivateKeyPem('EdDSA')];

/** A ring of keys activating at the given times, in that order (as loadKeyRing sorts them). */
function ring(...activations: number[]): { ring: KeyRing; keys: SigningKey[] } {
  const keys = activations.map((at, index) => toSigningKey(pems[index] as string, `${index}.pem`, at));
  return { ring: new KeyRing(keys, () => now), keys };
}

function verdictOf(r: KeyRing, kid: string) {
  return retirementVerdicts(r, now, lifetimeMs).find((verdict) => verdict.key.kid === kid);
}

t.test('the active key is never retirable, even as the only key', async (t) => {
  const { ring: r, keys } = ring(0);
  t.match(verdictOf(r, keys[0]?.kid as string), { retirable: false, reason: 'active' });
});

t.test('a key not yet signing is never retirable', async (t) => {
  const { ring: r, keys } = ring(now - 60 * MINUTE, now + 15 * MINUTE);
  t.match(verdictOf(r, keys[1]?.kid as string), { retirable: false, reason: 'pending' });
  t.match(verdictOf(r, keys[0]?.kid as string), { retirable: false, reason: 'active' }, 'the old key still signs');
});

t.test('a superseded key stays while its last tokens may be accepted, to the millisecond', async (t) => {
  for (const [supersededAgo, retirable] of [
    [0, false],
    [lifetimeMs - 1, false],
    [lifetimeMs, false],
    [lifetimeMs + 1, true],
  ] as const) {
    const supersededAt = now - supersededAgo;
    const { ring: r, keys } = ring(0, supersededAt);
    const verdict = verdictOf(r, keys[0]?.kid as string);
    if (retirable) {
      t.match(verdict, { retirable: true, supersededAt, tokensExpiredAt: supersededAt + lifetimeMs });
    } else {
      t.match(
        verdict,
        { retirable: false, reason: 'tokens-alive', retirableAt: supersededAt + lifetimeMs },
        `superseded ${supersededAgo} ms ago: kept`,
      );
    }
  }
});

t.test('superseded is counted from the next key, not from the active one', async (t) => {
  // A signed until B took over 2 h ago; B signed until C took over 1 minute ago.
  const { ring: r, keys } = ring(now - 3 * 60 * MINUTE, now - 2 * 60 * MINUTE, now - MINUTE);
  const [a, b, c] = keys.map((key) => verdictOf(r, key.kid));
  t.match(a, { retirable: true, supersededAt: now - 2 * 60 * MINUTE });
  t.match(b, { retirable: false, reason: 'tokens-alive' }, 'B signed a minute ago');
  t.match(c, { retirable: false, reason: 'active' });
});

t.test('while the next key is still pending, the signing key is active, not superseded', async (t) => {
  const { ring: r, keys } = ring(0, now + 1);
  t.match(verdictOf(r, keys[0]?.kid as string), { retirable: false, reason: 'active' });
});

function keysRetire(env: Record<string, string>, args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/scripts/keys-retire.ts', ...args],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
    );
  });
}

/** A folder where `old.pem` was superseded by `new.pem` a minute ago (both EdDSA, recorded in keys.json). */
async function supersededFolder(t: Test): Promise<{ dir: string; oldKid: string; newKid: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-retire-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [oldPem, newPem] = pems as [string, string];
  await writeFile(path.join(dir, 'old.pem'), oldPem, { mode: 0o600 });
  await writeFile(path.join(dir, 'new.pem'), newPem, { mode: 0o600 });
  const oldKid = toSigningKey(oldPem, '', 0).kid;
  const newKid = toSigningKey(newPem, '', 0).kid;
  const at = (ms: number) => new Date(ms).toISOString();
  await writeFile(
    path.join(dir, 'keys.json'),
    JSON.stringify({
      keys: [
        { kid: oldKid, file: 'old.pem', activatesAt: at(Date.now() - 86_400_000) },
        { kid: newKid, file: 'new.pem', activatesAt: at(Date.now() - MINUTE) },
      ],
    }),
  );
  return { dir, oldKid, newKid };
}

t.test('keys:retire as a process: refuses with exit 1, removes with exit 0, and says why', async (t) => {
  const [young, old] = [await supersededFolder(t), await supersededFolder(t)];
  const base = { NODE_ENV: 'test', JWT_ALG: 'EdDSA', CLOCK_TOLERANCE: '30' };
  const [refused, nothing, retired] = await Promise.all([
    // Tokens live 900 s: the old key's last ones, signed a minute ago, are still valid.
    keysRetire({ ...base, KEYS_DIR: young.dir, ACCESS_TOKEN_TTL: '900' }, ['--kid', young.oldKid]),
    keysRetire({ ...base, KEYS_DIR: young.dir, ACCESS_TOKEN_TTL: '900' }, []),
    // Tokens live 20 s (+ 30 s tolerance): a minute is enough.
    keysRetire({ ...base, KEYS_DIR: old.dir, ACCESS_TOKEN_TTL: '20' }, []),
  ]);

  t.equal(refused.code, 1, 'a named key still needed: exit 1');
  t.match(refused.stderr, /refused; nothing removed/);
  t.match(refused.stderr, new RegExp(`${young.oldKid} \\(old\\.pem\\): tokens it signed may still be accepted until`));
  t.equal(nothing.code, 0, 'nothing retirable and nothing named: exit 0');
  t.match(nothing.stdout, /Nothing to retire/);
  t.match(nothing.stdout, new RegExp(`Kept ${young.newKid} \\(new\\.pem\\): the active signing key`));
  t.same((await readdir(young.dir)).sort(), ['keys.json', 'new.pem', 'old.pem'], 'nothing removed');

  t.equal(retired.code, 0, `exit 0 ${retired.stderr}`);
  t.match(retired.stdout, new RegExp(`Retired ${old.oldKid} \\(old\\.pem\\): superseded at \\S+; its last tokens`));
  t.same((await readdir(old.dir)).sort(), ['keys.json', 'new.pem'], 'the file is gone');
  const manifest = JSON.parse(await readFile(path.join(old.dir, 'keys.json'), 'utf8')) as { keys: { kid: string }[] };
  t.same(
    manifest.keys.map((entry) => entry.kid),
    [old.newKid],
    'and its keys.json entry',
  );
});
