// `prestart` (scripts/build-if-stale.mjs) as a real process on a small project of its own: it compiles when dist/ is
// stale, does nothing (fast) when dist/ is current, and two starts at once build once, the other waiting for it.
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { repoRoot } from '../helpers/server-process.js';

interface Outcome {
  code: number;
  stderr: string;
  ms: number;
}

/** Runs the script in `cwd`, as npm runs `prestart`; `onStderr` sees its messages as they come. */
function buildIfStale(cwd: string, onStderr?: (text: string) => void): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['scripts/build-if-stale.mjs'],
      { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() }, timeout: 120_000 },
      (error, _stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stderr, ms: Date.now() - started });
      },
    );
    if (onStderr) {
      let seen = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        seen += chunk;
        onStderr(seen);
      });
    }
  });
}

// Each case compiles a few times, and tsc takes seconds even for two modules.
t.setTimeout(300_000);

const built = (outcome: Outcome) => /built dist\/ in/.test(outcome.stderr);

/** A project with the repository's tsconfig.json, package.json and script, and a two-module src/. */
async function makeProject(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-build-if-stale-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'scripts'));
  await mkdir(path.join(dir, 'src/lib'), { recursive: true });
  for (const file of ['tsconfig.json', 'package.json', 'scripts/build-if-stale.mjs']) {
    await copyFile(path.join(repoRoot, file), path.join(dir, file));
  }
  await symlink(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  await writeFile(path.join(dir, 'src/lib/greeting.ts'), "export const greeting: string = 'hello';\n");
  await writeFile(path.join(dir, 'src/lib/extra.ts'), 'export const extra = 1;\n');
  await writeFile(
    path.join(dir, 'src/server.ts'),
    "import { greeting } from './lib/greeting.js';\nconsole.log(greeting);\n",
  );
  return dir;
}

function runBuilt(dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['dist/server.js'], { cwd: dir, timeout: 10_000 }, (error, stdout) =>
      error ? reject(error) : resolve(stdout.trim()),
    );
  });
}

/** What a build may leave behind besides its output: nothing but the stamp. */
async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(path.join(dir, 'dist'))).filter((entry) => entry.startsWith('.') && entry !== '.build-stamp');
}

t.test('package.json: prestart builds only when stale, build stays plain tsc', async (t) => {
  const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  t.equal(pkg.scripts.prestart, 'node scripts/build-if-stale.mjs');
  t.equal(pkg.scripts.build, 'tsc -p tsconfig.json');
  t.equal(pkg.scripts.start, 'node dist/server.js');
});

t.test('stale: builds; current: does nothing, fast; a change or a deletion: builds again', async (t) => {
  const dir = await makeProject(t);

  const first = await buildIfStale(dir);
  t.equal(first.code, 0, `no dist/: exit 0 (${first.stderr.trim()})`);
  t.ok(built(first), 'no dist/: it compiled');
  t.equal(await runBuilt(dir), 'hello', 'the output runs');
  t.same(await leftovers(dir), [], 'no lock or temp folder is left behind');

  const serverMtime = (await stat(path.join(dir, 'dist/server.js'))).mtimeMs;
  const second = await buildIfStale(dir);
  t.equal(second.code, 0, 'current: exit 0');
  t.equal(second.stderr, '', 'current: nothing to say, nothing compiled');
  t.ok(second.ms < 3_000, `current: fast (${second.ms} ms)`);
  t.equal((await stat(path.join(dir, 'dist/server.js'))).mtimeMs, serverMtime, 'current: dist/ untouched');

  await writeFile(path.join(dir, 'src/lib/greeting.ts'), "export const greeting: string = 'changed';\n");
  const third = await buildIfStale(dir);
  t.ok(built(third), 'a source changed: it compiled again');
  t.equal(await runBuilt(dir), 'changed', 'and dist/ holds the change');

  await rm(path.join(dir, 'src/lib/extra.ts'));
  const fourth = await buildIfStale(dir);
  t.ok(built(fourth), 'a source deleted: it compiled again');
  await t.rejects(stat(path.join(dir, 'dist/lib/extra.js')), 'the deleted source no longer has an output');
  t.ok((await stat(path.join(dir, 'dist/lib/greeting.js'))).isFile(), 'the others stay');

  await writeFile(path.join(dir, 'tsconfig.json'), `${await readFile(path.join(dir, 'tsconfig.json'), 'utf8')}\n`);
  t.ok(built(await buildIfStale(dir)), 'tsconfig.json changed: it compiled again');
});

t.test('a type error: non-zero exit, dist/ unchanged, and the next run tries again', async (t) => {
  const dir = await makeProject(t);
  t.ok(built(await buildIfStale(dir)), 'first build');
  await writeFile(path.join(dir, 'src/lib/greeting.ts'), 'export const greeting: string = 42;\n');
  const failed = await buildIfStale(dir);
  t.not(failed.code, 0, 'tsc failed: non-zero exit (so npm start does not run)');
  t.match(failed.stderr, /tsc failed/);
  t.equal(await runBuilt(dir), 'hello', 'dist/ still holds the last good build');
  t.same(await leftovers(dir), [], 'no lock or temp folder is left behind');
  t.not((await buildIfStale(dir)).code, 0, 'still stale: it tries again');
});

t.test('two runs at once: both succeed, one builds, the other waits for it', async (t) => {
  const dir = await makeProject(t);
  const [a, b] = await Promise.all([buildIfStale(dir), buildIfStale(dir)]);
  t.equal(a.code, 0, `first: exit 0 (${a.stderr.trim()})`);
  t.equal(b.code, 0, `second: exit 0 (${b.stderr.trim()})`);
  t.equal([a, b].filter(built).length, 1, 'exactly one compiled');
  t.equal(await runBuilt(dir), 'hello');
  t.same(await leftovers(dir), [], 'no lock or temp folder is left behind');
});

t.test('a lock held by a live process is waited for; one left by a dead process is taken over', async (t) => {
  const dir = await makeProject(t);
  await mkdir(path.join(dir, 'dist'));
  const lock = path.join(dir, 'dist/.build.lock');

  // Held by this (live) test process: the script waits until the lock goes away, then builds.
  await writeFile(lock, `${process.pid}\n`);
  // The lock goes once the script says it waits (however late a loaded machine starts it), and 1 s after that.
  let saidItWaits: () => void = () => undefined;
  const said = new Promise<void>((resolve) => {
    saidItWaits = resolve;
  });
  const waiting = buildIfStale(dir, (text) => {
    if (text.includes('waiting for the build in progress')) saidItWaits();
  });
  await Promise.race([said, waiting]);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await rm(lock);
  const waited = await waiting;
  t.equal(waited.code, 0, `exit 0 (${waited.stderr.trim()})`);
  t.match(waited.stderr, new RegExp(`waiting for the build in progress \\(pid ${process.pid}`), 'it said it waits');
  t.ok(waited.ms >= 1_000, 'and it did wait');
  t.ok(built(waited), 'then it built');

  // Left by a process that is gone.
  const dead = spawn(process.execPath, ['-e', '']);
  const deadPid = dead.pid as number;
  await new Promise((resolve) => dead.on('exit', resolve));
  await writeFile(lock, `${deadPid}\n`);
  await writeFile(path.join(dir, 'src/lib/greeting.ts'), "export const greeting: string = 'again';\n");
  const takenOver = await buildIfStale(dir);
  t.equal(takenOver.code, 0, `exit 0 (${takenOver.stderr.trim()})`);
  t.match(takenOver.stderr, new RegExp(`taking over the lock of a build that is gone \\(pid ${deadPid}\\)`));
  t.equal(await runBuilt(dir), 'again');
  t.same(await leftovers(dir), [], 'no lock or temp folder is left behind');
});
