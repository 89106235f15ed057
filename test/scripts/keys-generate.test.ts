// `npm run keys:generate` as a real process: it records when the new key starts signing in keys.json and says so;
// the key ring then switches at exactly that time, in the folder or in a copy of it.
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { generatePrivateKeyPem, loadKeyRing, toSigningKey } from '../../src/keys/key-ring.js';
import { repoRoot } from '../helpers/server-process.js';

function keysGenerate(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/scripts/keys-generate.ts'],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
    );
  });
}

t.test('the new key signs from now + KEY_ACTIVATION_DELAY, as printed and recorded', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'auth-keys-generate-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = path.join(root, 'keys');
  const legacyPem = generatePrivateKeyPem('RS256');
  // A key provisioned before keys.json existed: no recorded time, so active since ever.
  await mkdir(dir);
  await writeFile(path.join(dir, 'legacy.pem'), legacyPem, { mode: 0o600 });

  const result = await keysGenerate({ KEYS_DIR: dir, KEY_ACTIVATION_DELAY: '900' });
  t.equal(result.code, 0, `exit 0 (${result.stderr.trim()})`);
  const printed = /starts signing at (\S+) \(now \+ KEY_ACTIVATION_DELAY, 900 s\)/.exec(result.stdout)?.[1];
  t.ok(printed, 'it prints when the key starts signing');
  const manifest = JSON.parse(await readFile(path.join(dir, 'keys.json'), 'utf8')) as {
    keys: { kid: string; file: string; activatesAt: string }[];
  };
  t.equal(manifest.keys.length, 1, 'one entry: the new key (the legacy key has none)');
  const [entry] = manifest.keys;
  t.equal(entry?.activatesAt, printed, 'keys.json holds the printed time');
  t.equal(entry?.file, `${entry?.kid}.pem`);

  const activatesAt = Date.parse(printed ?? '');
  const legacyKid = toSigningKey(legacyPem, '', 0).kid;
  const copy = path.join(root, 'copy');
  await cp(dir, copy, { recursive: true });
  for (const folder of [dir, copy]) {
    const load = (now: number) => loadKeyRing({ keysDir: folder, algorithm: 'RS256', generateIfEmpty: false, now });
    t.equal((await load(activatesAt - 1)).active.kid, legacyKid, `${path.basename(folder)}: the old key until then`);
    t.equal((await load(activatesAt)).active.kid, entry?.kid, `${path.basename(folder)}: the new key from then`);
  }
});
