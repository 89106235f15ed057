// `npm run prune`: deletes expired and long-revoked sessions, expired refresh tokens and revocations, then exits.
import { buildApp } from '../app.js';
import { ConfigError, loadConfig } from '../config.js';
import { pruneExpired } from '../modules/sessions/housekeeping.js';

try {
  const config = loadConfig();
  const app = await buildApp({ ...config, pruneInterval: 0 }, { logger: { level: 'warn' } });
  try {
    const result = await pruneExpired(app.db, new Date(app.clock.now()));
    process.stdout.write(
      `pruned ${result.sessions} sessions, ${result.refreshTokens} refresh tokens, ${result.revocations} revocations\n`,
    );
  } finally {
    await app.close();
  }
} catch (error) {
  process.stderr.write(
    `${error instanceof ConfigError ? error.message : `prune failed: ${(error as Error).message}`}\n`,
  );
  process.exitCode = 1;
}
