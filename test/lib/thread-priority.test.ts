// The event loop first: in a real process, every thread but the main one (libuv's pool, where argon2 runs, and V8's
// helpers) gets a higher nice value, and the main thread keeps its own. Linux keeps nice values per thread.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);

t.test(
  'every thread but the main one is lowered',
  { skip: process.platform !== 'linux' && 'Linux only' },
  async (t) => {
    const script = `
    import { readdirSync, readFileSync } from 'node:fs';
    import { deprioritizeBackgroundThreads } from './src/lib/thread-priority.ts';
    // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value (after the parenthesised name, which may hold spaces).
    const nice = (tid) => Number(readFileSync('/proc/self/task/' + tid + '/stat', 'utf8').split(') ')[1].split(' ')[16]);
    const threads = () => readdirSync('/proc/self/task').map(Number);
    const changed = deprioritizeBackgroundThreads(5);
    console.log(JSON.stringify({ changed, main: nice(process.pid), others: threads().filter((tid) => tid !== process.pid).map(nice) }));
  `;
    const { stdout } = await run(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url).pathname,
    });
    const { changed, main, others } = JSON.parse(stdout) as { changed: number; main: number; others: number[] };
    t.equal(main, 0, 'the main thread keeps nice 0');
    t.ok(others.length >= 4, 'libuv and V8 threads exist from startup');
    t.equal(changed, others.length, 'each of them was changed');
    t.ok(
      others.every((value) => value === 5),
      `each is at nice 5 (${others.join(', ')})`,
    );
  },
);
