import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import t from 'tap';
import { type App, buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { users } from '../src/db/schema.js';

// PGlite boots slowly (several seconds): one boot and one restart for the whole file.
t.test('embedded mode: PGlite and the embedded store, surviving a restart', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'auth-embedded-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dataDir = path.join(root, 'data');
  const keysDir = path.join(root, 'keys');

  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir, KEYS_DIR: keysDir });
  t.equal(config.databaseUrl, undefined);
  t.equal(config.redisUrl, undefined);

  let app: App | undefined;
  t.teardown(() => app?.close());

  app = await buildApp(config, { logger: false });
  t.equal(app.database.kind, 'pglite');
  t.equal(app.store.kind, 'embedded');

  const ready = await app.inject({ method: 'GET', url: '/health/ready' });
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), { status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });

  const keyFiles = (await readdir(keysDir)).filter((file) => file.endsWith('.pem'));
  t.equal(keyFiles.length, 1, 'a development key was generated');
  t.equal((await stat(path.join(keysDir, keyFiles[0] as string))).mode & 0o777, 0o600, 'with mode 0600');

  const jwks = async (instance: App) =>
    instance.inject({ method: 'GET', url: '/.well-known/jwks.json' }).then((r) => r.json()) as Promise<{
      keys: { kid: string }[];
    }>;
  const kidsBefore = (await jwks(app)).keys.map((key) => key.kid);
  t.same(kidsBefore, [app.keys.active.kid]);

  const email = `embedded-${randomUUID()}@example.com`;
  const [inserted] = await app.db.insert(users).values({ email, passwordHash: 'not-a-real-hash' }).returning();
  t.ok(inserted?.id, 'a user row was inserted');
  const jti = randomUUID();
  await app.store.revokeToken(jti, 60_000);

  await app.close();
  app = undefined;

  app = await buildApp(config, { logger: false });
  t.pass('the restart succeeded: migrations ran again without failing');

  const rows = await app.db.select().from(users).where(eq(users.email, email));
  t.equal(rows.length, 1, 'the user row is still there');
  t.equal(rows[0]?.id, inserted?.id);
  t.same(rows[0]?.roles, ['user']);

  t.equal(
    (await app.store.revocationState(jti, randomUUID(), randomUUID())).tokenRevoked,
    true,
    'a revoked token stays revoked',
  );

  t.same(
    (await jwks(app)).keys.map((key) => key.kid),
    kidsBefore,
    'the same kid is served',
  );
  t.equal((await readdir(keysDir)).filter((file) => file.endsWith('.pem')).length, 1, 'no second key was generated');

  const readyAgain = await app.inject({ method: 'GET', url: '/health/ready' });
  t.equal(readyAgain.statusCode, 200);
});
