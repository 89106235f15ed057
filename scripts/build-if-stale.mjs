// `prestart`: compiles src/ into dist/ only when dist/ is stale, under a lock, without ever exposing a half-written
// file. Run from the package root (npm does). Plain JavaScript: it runs before dist/ exists.
//
// - Stale: no dist/.build-stamp, no dist/server.js, or the stamp's fingerprint (path, size and mtime of every file
//   under src/, plus tsconfig.json and package.json) differs from the current one. A deleted or restored file
//   counts as a change, not only a newer one.
// - dist/.build.lock is created exclusively and holds the builder's pid. Another start waits for it, then finds
//   dist/ current and runs what was built. A lock whose process died is taken over.
// - tsc writes into dist/.next-<pid>/; each file is then renamed over its old version (atomic per file), files that
//   no longer exist are removed, and the stamp is written last.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.cwd();
const dist = path.join(root, 'dist');
const lockFile = path.join(dist, '.build.lock');
const stampFile = path.join(dist, '.build-stamp');
const TEMP_PREFIX = '.next-';
const OWN_FILES = new Set(['.build.lock', '.build-stamp']);
const INPUT_FILES = ['tsconfig.json', 'package.json'];
const WAIT_TIMEOUT_MS = Number(process.env.BUILD_LOCK_TIMEOUT_MS ?? 300_000);
const POLL_MS = 100;

const say = (message) => process.stderr.write(`build-if-stale: ${message}\n`);

/** Every file under `dir`, as paths relative to `base`, sorted. */
function walk(dir, base = dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...walk(full, base));
    else if (entry.isFile()) files.push(path.relative(base, full));
  }
  return files.sort();
}

function fingerprint() {
  const hash = createHash('sha256');
  const inputs = [...INPUT_FILES, ...walk(path.join(root, 'src')).map((file) => path.join('src', file))];
  for (const file of inputs) {
    const stat = statSync(path.join(root, file));
    hash.update(`${file}\0${stat.size}\0${stat.mtimeMs}\n`);
  }
  return hash.digest('hex');
}

function isCurrent(expected) {
  try {
    statSync(path.join(dist, 'server.js'));
    return readFileSync(stampFile, 'utf8').trim() === expected;
  } catch {
    return false;
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return error.code === 'EPERM';
  }
}

const ours = `${process.pid}\n`;
let holding = false;

function release() {
  if (!holding) return;
  holding = false;
  try {
    if (readFileSync(lockFile, 'utf8') === ours) unlinkSync(lockFile);
  } catch {
    // Already gone.
  }
}

/** The lock file's content, or undefined when there is none. */
function readLock() {
  try {
    return readFileSync(lockFile, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Removes the lock only while it still holds `content`, so a lock taken since is left alone. */
function removeLock(content) {
  if (readLock() === content) rmSync(lockFile, { force: true });
}

const sleep = () => new Promise((resolve) => setTimeout(resolve, POLL_MS));

/** Takes the lock and returns true, or waits until its holder lets go and returns false (the caller checks again). */
async function lockOrWait() {
  mkdirSync(dist, { recursive: true });
  const deadline = Date.now() + WAIT_TIMEOUT_MS;
  for (;;) {
    try {
      writeFileSync(lockFile, ours, { flag: 'wx' });
      holding = true;
      return true;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    const content = readLock();
    if (content === undefined) continue;
    const holder = Number.parseInt(content, 10);
    if (!(holder > 0)) {
      // Created but not yet written; left empty only by a process killed in between.
      const age = Date.now() - (statSync(lockFile, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 5_000) removeLock(content);
      await sleep();
      continue;
    }
    if (holder === process.pid || !isAlive(holder)) {
      say(`taking over the lock of a build that is gone (pid ${holder})`);
      removeLock(content);
      continue;
    }
    say(`waiting for the build in progress (pid ${holder}, ${path.relative(root, lockFile)})`);
    while (readLock() === content && isAlive(holder)) {
      if (Date.now() > deadline) {
        throw new Error(`pid ${holder} still holds ${lockFile} after ${WAIT_TIMEOUT_MS} ms`);
      }
      await sleep();
    }
    return false;
  }
}

function tsc(outDir) {
  const bin = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, '-p', 'tsconfig.json', '--outDir', outDir], {
      cwd: root,
      stdio: 'inherit',
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/** Moves the new build over dist/, one atomic rename per file, and removes outputs that no longer exist. */
function install(next) {
  const built = walk(next);
  for (const file of built) {
    mkdirSync(path.dirname(path.join(dist, file)), { recursive: true });
    renameSync(path.join(next, file), path.join(dist, file));
  }
  const keep = new Set(built);
  for (const file of walk(dist)) {
    const top = file.split(path.sep)[0];
    if (OWN_FILES.has(top) || top.startsWith(TEMP_PREFIX) || keep.has(file)) continue;
    rmSync(path.join(dist, file), { force: true });
  }
  rmSync(next, { recursive: true, force: true });
}

async function main() {
  for (;;) {
    if (isCurrent(fingerprint())) return 0;
    if (await lockOrWait()) break;
  }
  process.on('exit', release);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      release();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
  try {
    // Checked again under the lock: whoever held it before may just have built the same sources.
    const expected = fingerprint();
    if (isCurrent(expected)) return 0;
    // Builds that died leave their temp folders; none is running while we hold the lock.
    for (const entry of readdirSync(dist)) {
      if (entry.startsWith(TEMP_PREFIX)) rmSync(path.join(dist, entry), { recursive: true, force: true });
    }
    const next = path.join(dist, `${TEMP_PREFIX}${process.pid}`);
    const started = Date.now();
    say('dist/ is stale: compiling src/ with tsc');
    const code = await tsc(next);
    if (code !== 0) {
      rmSync(next, { recursive: true, force: true });
      say(`tsc failed (exit code ${code}); dist/ is unchanged`);
      return code;
    }
    install(next);
    // The fingerprint taken before compiling: a source edited during the build makes the next start build again.
    writeFileSync(stampFile, `${expected}\n`);
    say(`built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } finally {
    release();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  say(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}
