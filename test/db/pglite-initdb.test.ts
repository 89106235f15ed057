// A new embedded data folder gets its cluster from initdb in a process of its own (src/db/pglite-initdb.ts), made in
// a staging folder and renamed into place: the folder opens and migrates, nothing of the staging is left, a staging
// folder left by a start that died is replaced, and a folder with files but no database is refused untouched.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { openDatabase } from '../../src/db/client.js';
import { repoRoot } from '../helpers/server-process.js';

const root = await mkdtemp(path.join(tmpdir(), 'auth-initdb-test-'));
t.teardown(() => rm(root, { recursive: true, force: true }));

const open = (dataDir: string) => openDatabase({ databaseUrl: undefined, dataDir }, () => undefined);

t.test('a new data folder: created apart, migrated, and only the cluster is left', async (t) => {
  const dataDir = path.join(root, 'new');
  const handle = await open(dataDir);
  t.teardown(() => handle.close());
  t.equal(handle.migrations.applied, handle.migrations.total, 'every migration applied');
  const { rows } = (await handle.db.execute(sql`SELECT count(*)::int AS users FROM users`)) as unknown as {
    rows: { users: number }[];
  };
  t.same(rows, [{ users: 0 }], 'the schema is there');
  t.ok(existsSync(path.join(dataDir, 'pglite', 'PG_VERSION')), 'the cluster is in place');
  t.same((await readdir(dataDir)).sort(), ['.lock', 'pglite'], 'no staging folder left beside it');
  t.match(
    await readFile(path.join(dataDir, 'pglite', 'postgresql.conf'), 'utf8'),
    /^shared_buffers = 16MB/m,
    "initdb ran with the service's settings",
  );
});

t.test('a staging folder left by a start that died is replaced', async (t) => {
  const dataDir = path.join(root, 'died');
  await mkdir(path.join(dataDir, 'pglite.initdb', 'base'), { recursive: true });
  await writeFile(path.join(dataDir, 'pglite.initdb', 'PG_VERSION'), 'half-made\n');
  const handle = await open(dataDir);
  t.teardown(() => handle.close());
  t.equal(handle.migrations.applied, handle.migrations.total);
  t.notOk(existsSync(path.join(dataDir, 'pglite.initdb')), 'the leftover is gone');
  t.equal((await readFile(path.join(dataDir, 'pglite', 'PG_VERSION'), 'utf8')).trim(), '18', 'a whole cluster');
});

t.test('a folder holding files but no database is refused, and left as it was', async (t) => {
  const dataDir = path.join(root, 'foreign');
  await mkdir(path.join(dataDir, 'pglite'), { recursive: true });
  await writeFile(path.join(dataDir, 'pglite', 'notes.txt'), 'not a database');
  await t.rejects(open(dataDir), /holds files but no database \(no PG_VERSION\)/);
  t.same(await readdir(path.join(dataDir, 'pglite')), ['notes.txt'], 'its files untouched');
  t.notOk(existsSync(path.join(dataDir, 'pglite.initdb')), 'no staging folder left');
  t.notOk(existsSync(path.join(dataDir, '.lock')), 'the lock released');
});

t.test('the initdb program: usage without a folder, and its peak reported on stdout', async (t) => {
  const script = path.join(repoRoot, 'src', 'db', 'pglite-initdb.ts');
  const run = promisify(execFile);
  await t.rejects(run(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot }), { code: 2 });
  const folder = path.join(root, 'program', 'pglite');
  const { stdout } = await run(process.execPath, ['--import', 'tsx', script, folder], { cwd: repoRoot });
  t.match(JSON.parse(stdout), { peakRssKb: Number });
  t.ok(existsSync(path.join(folder, 'PG_VERSION')));
});
