// Under CPU contention the event loop, which answers every request, must run first: argon2 (in libuv's pool) and
// V8's helpers (GC, compilation) are background work. Linux keeps a nice value per thread, so each thread of the
// process but the main one is lowered; both pools exist from startup, and threads they add later inherit nothing
// from this (they are rare: worker_threads, started by the main thread).
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** Nice 5 weighs a third of nice 0 in Linux's scheduler: on a saturated core, logins still get a quarter of it. */
export const BACKGROUND_THREAD_NICENESS = 5;

/** Raises the nice value of every thread but the main one by `by` (never lowers one); returns how many changed. */
export function deprioritizeBackgroundThreads(by: number): number {
  if (process.platform !== 'linux' || by <= 0) return 0;
  let changed = 0;
  for (const entry of readdirSync('/proc/self/task')) {
    const tid = Number(entry);
    if (tid === process.pid) continue;
    try {
      // On Linux setpriority(PRIO_PROCESS, tid) is per thread; raising one's own nice needs no privilege.
      setPriority(tid, Math.min(19, getPriority(tid) + by));
      changed += 1;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return changed;
}
