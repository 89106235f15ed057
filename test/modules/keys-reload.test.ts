// Rotation end to end, with no restart: while tokens are issued and verified (by jose's remote JWKS, cached like a
// real resource server's) continuously, `keys:rotate` and then `keys:retire` run as real processes on the app's
// KEYS_DIR. No verification fails, the new key signs only after KEY_ACTIVATION_DELAY and only once published, the
// retired key leaves the JWKS, a corrupt file in between changes nothing, and the JWKS answers 304 to its ETag.
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { repoRoot } from '../helpers/server-process.js';

const RELOAD_INTERVAL_S = 1;
const ACTIVATION_DELAY_S = 3;
const ACCESS_TOKEN_TTL_S = 2;
const CLOCK_TOLERANCE_S = 1;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function runScript(script: string, env: Record<string, string>, args: string[] = []) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', `src/scripts/${script}.ts`, ...args],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
    );
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(100);
  }
}

t.test('keys:rotate then keys:retire under continuous issuing and verifying', async (t) => {
  const env = {
    KEYS_RELOAD_INTERVAL: String(RELOAD_INTERVAL_S),
    KEY_ACTIVATION_DELAY: String(ACTIVATION_DELAY_S),
    ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_S),
    CLOCK_TOLERANCE: String(CLOCK_TOLERANCE_S),
    JWKS_MAX_AGE: '1',
  };
  const { app, config } = await buildTestApp(t, { env });
  const scriptEnv = { ...env, NODE_ENV: 'test', KEYS_DIR: config.keysDir };
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const jwksUrl = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  const oldKid = app.keys.active.kid;

  const fetchJwks = async (etag?: string) => {
    const response = await fetch(jwksUrl, { headers: etag ? { 'if-none-match': etag } : {} });
    const body = response.status === 200 ? ((await response.json()) as { keys: { kid: string }[] }) : undefined;
    return { status: response.status, etag: response.headers.get('etag') ?? '', kids: body?.keys.map((k) => k.kid) };
  };
  // When the test first saw each kid in the JWKS.
  const firstPublished = new Map<string, number>();
  const observe = async () => {
    const { kids, etag } = await fetchJwks();
    for (const kid of kids ?? []) if (!firstPublished.has(kid)) firstPublished.set(kid, Date.now());
    return { kids: kids ?? [], etag };
  };
  const first = await observe();
  t.same(first.kids, [oldKid]);
  const notModified = await fetchJwks(first.etag);
  t.equal(notModified.status, 304, 'If-None-Match with the current ETag: 304');
  t.equal(notModified.etag, first.etag, 'with the same ETag');

  // The resource server: jose's remote set, cached and cooled down as a real verifier configures it.
  const remote = createRemoteJWKSet(new URL(jwksUrl), { cacheMaxAge: 2_000, cooldownDuration: 500 });
  const issued: { at: number; kid: string }[] = [];
  const failures: string[] = [];
  let running = true;
  let sequence = 0;
  const traffic = (async () => {
    while (running) {
      const { token } = app.accessTokens.issue({
        userId: `user-${sequence++}`,
        sessionId: 'session',
        roles: ['user'],
        tokenVersion: 0,
        amr: ['pwd'],
      });
      const kid = String(decodeProtectedHeader(token).kid);
      issued.push({ at: Date.now(), kid });
      try {
        await jwtVerify(token, remote, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: ['RS256'],
          typ: 'at+jwt',
        });
        await app.accessTokens.verify(token);
      } catch (error) {
        failures.push(`${kid}: ${(error as Error).message}`);
      }
      await sleep(20);
    }
  })();
  t.teardown(async () => {
    running = false;
    await traffic;
  });

  // A corrupt file dropped into the folder: the reload keeps the ring, the service keeps signing and publishing.
  const broken = path.join(config.keysDir, 'broken.pem');
  await writeFile(broken, '-----BEGIN PRIVATE KEY-----\nnot a key');
  await sleep(RELOAD_INTERVAL_S * 1000 + 500);
  t.same((await observe()).kids, [oldKid], 'a corrupt file changes nothing');
  t.equal(app.keys.active.kid, oldKid);
  await rm(broken);

  const rotated = await runScript('keys-rotate', scriptEnv);
  t.equal(rotated.code, 0, `keys:rotate exits 0 ${rotated.stderr}`);
  const manifest = JSON.parse(await readFile(path.join(config.keysDir, 'keys.json'), 'utf8')) as {
    keys: { kid: string; activatesAt: string }[];
  };
  const [entry] = manifest.keys;
  const newKid = entry?.kid as string;
  const activatesAt = Date.parse(entry?.activatesAt ?? '');
  t.not(newKid, oldKid);

  // The new key, pending or (once this slow child process gets there) active, is never retirable: refused, exit 1.
  // (When the old key becomes retirable is test/keys/retirement.test.ts's business: child processes are too slow
  // on a loaded machine to time it here.)
  const early = runScript('keys-retire', scriptEnv, ['--kid', newKid]);
  await until('the new key is published', async () => (await observe()).kids.includes(newKid));
  const rotatedJwks = await observe();
  t.not(rotatedJwks.etag, first.etag, 'the ETag changes with the key set');
  t.equal((await fetchJwks(first.etag)).status, 200, 'an old ETag gets the new set');
  t.equal((await fetchJwks(rotatedJwks.etag)).status, 304, 'the new ETag gets 304');
  const refused = await early;
  t.equal(refused.code, 1, 'keys:retire refuses the new key');
  t.match(
    refused.stderr,
    new RegExp(`refused; nothing removed[^]*${newKid}.*(not signing yet|the active signing key)`),
  );

  await until('the new key signs', async () => issued.at(-1)?.kid === newKid, ACTIVATION_DELAY_S * 1000 + 5_000);
  const byNew = issued.filter((token) => token.kid === newKid);
  t.ok(
    byNew.every((token) => token.at >= activatesAt),
    'no token of the new key before its activation time',
  );
  t.ok(
    (byNew[0]?.at ?? 0) >= (firstPublished.get(newKid) ?? Number.POSITIVE_INFINITY),
    'the new key signs only after the JWKS published it',
  );

  // The old key's last tokens expire ACCESS_TOKEN_TTL + CLOCK_TOLERANCE after the new key took over.
  const retirableAt = activatesAt + (ACCESS_TOKEN_TTL_S + CLOCK_TOLERANCE_S) * 1000;
  await sleep(Math.max(0, retirableAt - Date.now() + 100));
  const retired = await runScript('keys-retire', scriptEnv);
  t.equal(retired.code, 0, `keys:retire exits 0 ${retired.stderr}`);
  t.match(retired.stdout, new RegExp(`Retired ${oldKid}`), 'it says what it removed');
  t.match(retired.stdout, new RegExp(`Kept ${newKid}.*the active signing key`), 'and what it kept, and why');
  await until('the retired key leaves the JWKS', async () => !(await observe()).kids.includes(oldKid));
  const retiredJwks = await observe();
  t.same(retiredJwks.kids, [newKid]);
  t.not(retiredJwks.etag, rotatedJwks.etag, 'the ETag changes again');
  t.equal((await fetchJwks(retiredJwks.etag)).status, 304);

  running = false;
  await traffic;
  t.same(failures, [], 'no verification failed');
  t.ok(issued.length > 50, `tokens were issued throughout (${issued.length})`);
  t.ok(issued.some((token) => token.kid === oldKid) && byNew.length > 0, 'tokens of both keys were verified');
});
