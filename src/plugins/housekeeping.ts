// Runs the prune job every PRUNE_INTERVAL seconds (0: never; use `npm run prune` from a scheduler instead).
// Safe on several instances at once: each run only deletes rows that are already dead.
import fp from 'fastify-plugin';
import { pruneExpired } from '../modules/sessions/housekeeping.js';

export default fp(
  async (app) => {
    const { pruneInterval } = app.config;
    if (pruneInterval === 0) return;
    let running: Promise<void> | undefined;
    const run = () => {
      running ??= pruneExpired(app.db, new Date(app.clock.now()))
        .then((result) => app.log.info({ pruned: result }, 'housekeeping'))
        .catch((error: unknown) => app.log.warn({ err: error }, 'housekeeping failed; will retry'))
        .finally(() => {
          running = undefined;
        });
    };
    const timer = setInterval(run, pruneInterval * 1000);
    timer.unref();
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await running;
    });
  },
  { name: 'housekeeping', dependencies: ['db', 'revocations'] },
);
