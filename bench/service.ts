// The service under test, as its own process: the real app from the environment (as src/server.ts does), plus one
// measurement-only route, listening on a free loopback port that it reports to the parent over IPC.
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { BACKGROUND_THREAD_NICENESS, deprioritizeBackgroundThreads } from '../src/lib/thread-priority.js';
import { announceReady, exitWithParent } from './child.js';

exitWithParent();

// Startup failures go to stderr (stdout is the JSON log, sent to /dev/null by the runner).
const app = await (async () => {
  const config = loadConfig();
  return buildApp(config, {
    extraRoutes: (scope) => {
      // Signature, claims and the deny-list round trip (Redis), with no database query: the cost of
      // authentication alone, next to the reference server that only verifies a signature.
      scope.get('/bench/authenticated', { onRequest: scope.authenticate }, async (request) => ({
        userId: request.principal?.userId,
      }));
    },
  });
})().catch((error: unknown) => {
  process.stderr.write(`service failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});

// As src/server.ts does: the benchmark measures the server as it runs, thread priorities included.
deprioritizeBackgroundThreads(BACKGROUND_THREAD_NICENESS);

// The runner stops us with SIGTERM: close the pool and Redis cleanly, so the database can be dropped at once.
process.once('SIGTERM', () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});

await app.listen({ port: 0, host: '127.0.0.1' });
announceReady(app);
