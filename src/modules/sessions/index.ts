// The sessions module: decorates `sessions` (start, rotate, end), serves the caller's session routes, and runs
// the periodic prune.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { pruneExpired } from './housekeeping.js';
import sessionsRoutes from './sessions.routes.js';
import { SessionService } from './sessions.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionService;
  }
}

export default fp(
  async (app) => {
    const { db, accessTokens, revocations, secrets, config, clock, log, metrics } = app;
    app.decorate(
      'sessions',
      new SessionService({
        db,
        accessTokens,
        revocations,
        refreshChildKey: secrets.refreshChild,
        config,
        clock,
        log,
        onReuseDetected: () => metrics.refreshTokenReuses.inc(),
      }),
    );
    await app.register(sessionsRoutes);
    schedulePrune(app);
  },
  {
    name: 'sessions',
    dependencies: ['config', 'db', 'secrets', 'access-tokens', 'authenticate', 'revocations', 'metrics'],
  },
);

/** Every PRUNE_INTERVAL seconds (0: never; use `npm run prune` from a scheduler instead). */
function schedulePrune(app: FastifyInstance): void {
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
}
