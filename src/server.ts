// Entry point: load config, build the app, listen, and shut down gracefully. The only place that exits.
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { buildApp, loggerOptions } from './app.js';
import { loadConfigOrExit } from './lib/cli.js';
import { BACKGROUND_THREAD_NICENESS, deprioritizeBackgroundThreads } from './lib/thread-priority.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  // Readable lines for a developer at a terminal; JSON for everything else (production, pipes, log collectors).
  const logger = loggerOptions(config, { pretty: process.stdout.isTTY === true && !config.isProduction });

  const app = await buildApp(config, { logger }).catch((error: unknown) => {
    pino(logger as pino.LoggerOptions).fatal({ err: error }, `start failed: ${(error as Error).message}`);
    process.exit(1);
  });

  // Request handling first: argon2 and V8's helpers yield the CPU to the event loop when they compete for it.
  deprioritizeBackgroundThreads(BACKGROUND_THREAD_NICENESS);

  // SIGTERM/SIGINT: stop accepting, let in-flight requests and deferred work finish, close pool and Redis, exit 0;
  // past SHUTDOWN_TIMEOUT close-with-grace exits 1, so a stuck request cannot hold a rolling deploy.
  closeWithGrace({ delay: config.shutdownTimeout * 1000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
  });

  await app.listen({ port: config.port, host: config.host });
}

await main();
