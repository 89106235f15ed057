// Memory of the embedded defaults, as behaviour: PGlite opens with the service's own Postgres settings (also a data
// folder made before them), and each driver is loaded only when the configuration uses it.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { openDatabase, PGLITE_INITIAL_MEMORY, PGLITE_SETTINGS, pgliteOptions } from '../../src/db/client.js';
import { makeKeysDir } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { repoRoot } from '../helpers/server-process.js';
import { testServers } from '../helpers/servers.js';

// Records, in the child, every module URL the ESM loader resolves (resolve hook on the loader's thread).
const hooks = `
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  port.postMessage(result.url);
  return result;
}`;

interface ChildResult {
  /** Every module URL resolved, by the end. */
  loaded: string[];
  /** The same when the body called `await imported()`. */
  imported: string[];
  reported: unknown;
}

/**
 * Runs `body` (an async function body, ESM, with `src` the URL of src/, `report(value)` to hand back JSON and
 * `await imported()` to note what is loaded so far) in a child process under tsx, with exactly `env`.
 */
function inChild(body: string, env: Record<string, string>): Promise<ChildResult> {
  const script = `
    import { register } from 'node:module';
    import { MessageChannel } from 'node:worker_threads';
    const loaded = new Set();
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (url) => loaded.add(url));
    port1.unref();
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}), {
      data: { port: port2 },
      transferList: [port2],
    });
    const src = ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'src')).href)};
    let reported = null;
    let importedSoFar = [];
    const report = (value) => { reported = value; };
    // The hook's messages cross threads: let the last ones arrive.
    const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
    const imported = async () => { await settle(); importedSoFar = [...loaded]; };
    await (async () => { ${body} })();
    await settle();
    process.stdout.write('\\n@@' + JSON.stringify({ loaded: [...loaded], imported: importedSoFar, reported }) + '\\n');
    process.exit(0);
  `;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '--eval', script],
      {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
        timeout: 90_000,
        maxBuffer: 16 * 2 ** 20,
      },
      (error, stdout, stderr) => {
        const line = stdout.split('\n').find((text) => text.startsWith('@@'));
        if (error || !line) reject(new Error(`child failed: ${error?.message ?? 'no report'}\n${stderr}`));
        else resolve(JSON.parse(line.slice(2)));
      },
    );
  });
}

const DRIVERS = {
  pglite: /\/node_modules\/@electric-sql\/pglite\//,
  drizzlePglite: /\/node_modules\/drizzle-orm\/pglite\//,
  pg: /\/node_modules\/pg\//,
  ioredis: /\/node_modules\/ioredis\//,
  embeddedStore: /\/src\/store\/embedded-store\.ts$/,
  redisStore: /\/src\/store\/redis-store\.ts$/,
};
type Driver = keyof typeof DRIVERS;

function driversIn(loaded: string[]): Driver[] {
  return (Object.keys(DRIVERS) as Driver[]).filter((name) => loaded.some((url) => DRIVERS[name].test(url)));
}

const root = await mkdtemp(path.join(tmpdir(), 'auth-memory-test-'));
t.teardown(() => rm(root, { recursive: true, force: true }));

t.test('PGlite options: its own start parameters, then the service settings', async (t) => {
  const options = await pgliteOptions();
  t.equal(options.initialMemory, PGLITE_INITIAL_MEMORY);
  t.equal(PGLITE_INITIAL_MEMORY, 128 * 2 ** 20, "pglite.wasm's own minimum: 2048 pages");
  const params = options.startParams ?? [];
  t.same(params.slice(0, PGlite.defaultStartParams.length), PGlite.defaultStartParams, "PGlite's are kept (-F too)");
  const settings = Object.entries(PGLITE_SETTINGS).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  t.same(params.slice(PGlite.defaultStartParams.length), settings);
  t.same(options.initDbStartParams, settings, 'initdb runs with them too');
});

const embeddedData = path.join(root, 'embedded-data');

t.test('embedded defaults: PGlite with its settings and the embedded store; no pg, no ioredis', async (t) => {
  const env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATA_DIR: embeddedData,
    KEYS_DIR: await makeKeysDir(t),
  };
  const { loaded, imported, reported } = await inChild(
    `
    const { buildApp } = await import(src + '/app.ts');
    const { loadConfig } = await import(src + '/config.ts');
    const { sql } = await import('drizzle-orm');
    await imported();
    const app = await buildApp(loadConfig(), { logger: false });
    const settings = {};
    for (const name of ${JSON.stringify(Object.keys(PGLITE_SETTINGS))}) {
      settings[name] = (await app.db.execute(sql.raw('SHOW ' + name))).rows[0][name];
    }
    report({ kind: app.database.kind, store: app.store.kind, settings });
    await app.close();
    `,
    env,
  );
  t.ok(
    imported.some((url) => url.endsWith('/src/db/client.ts')),
    'the recorder sees the app',
  );
  t.same(driversIn(imported), [], 'importing the app loads no database or store driver');
  t.same(reported, { kind: 'pglite', store: 'embedded', settings: PGLITE_SETTINGS });
  t.same(driversIn(loaded), ['pglite', 'drizzlePglite', 'embeddedStore'], 'booting it loads the embedded ones');
});

t.test('a data folder whose postgresql.conf has the server-sized settings opens with the service ones', async (t) => {
  // What initdb wrote before the service passed its settings to it.
  const conf = path.join(embeddedData, 'pglite', 'postgresql.conf');
  const text = await readFile(conf, 'utf8');
  t.match(text, /^shared_buffers = 16MB/m, 'initdb wrote the service settings into a new data folder');
  await writeFile(conf, text.replace(/^shared_buffers = .*$/m, 'shared_buffers = 128MB'));

  const handle = await openDatabase({ databaseUrl: undefined, dataDir: embeddedData }, () => undefined);
  t.teardown(() => handle.close());
  t.equal(handle.kind, 'pglite');
  t.equal(handle.migrations.applied, 0, 'the existing schema is kept');
  const show = async (name: string) =>
    ((await handle.db.execute(sql.raw(`SHOW ${name}`))) as unknown as { rows: Record<string, string>[] }).rows[0]?.[
      name
    ];
  t.equal(await show('shared_buffers'), PGLITE_SETTINGS.shared_buffers);
  t.equal(await show('fsync'), 'off', "PGlite's own -F, as before");
  t.equal(await show('synchronous_commit'), 'on');
});

t.test('Postgres and Redis: neither PGlite nor the embedded store is loaded', async (t) => {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: database.url,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: `test:memory:${Date.now()}:`,
    DATA_DIR: path.join(root, 'servers-data'),
    KEYS_DIR: await makeKeysDir(t),
  };
  const { loaded, reported } = await inChild(
    `
    const { buildApp } = await import(src + '/app.ts');
    const { loadConfig } = await import(src + '/config.ts');
    const app = await buildApp(loadConfig(), { logger: false });
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    report({ kind: app.database.kind, store: app.store.kind, ready: ready.statusCode });
    await app.close();
    `,
    env,
  );
  t.same(reported, { kind: 'postgres', store: 'redis', ready: 200 });
  t.same(driversIn(loaded), ['pg', 'ioredis', 'redisStore'], 'only the server drivers');
});
