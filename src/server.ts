// Entry point: load config, build the app, listen, and shut down gracefully. The only place that exits.
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { buildApp, loggerOptions } from './app.js';
import { loadConfigOrExit } from './lib/cli.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit();

  const app = await buildApp(config).catch((error: unknown) => {
    pino(loggerOptions(config) as pino.LoggerOptions).fatal(
      { err: error },
      `start failed: ${(error as Error).message}`,
    );
    process.exit(1);
  });

  // SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close pool and Redis, exit 0.
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
  });

  await app.listen({ port: config.port, host: config.host });
}

await main();
