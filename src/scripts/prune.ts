// `npm run prune`: deletes expired and long-revoked sessions, expired refresh tokens and revocations, then exits.
// It opens only the database: no signing keys, no deny-list store, nothing else of a running server is touched.
import pino from 'pino';
import { openDatabase } from '../db/client.js';
import { loadConfigOrExit } from '../lib/cli.js';
import { pruneExpired } from '../modules/sessions/housekeeping.js';

const config = loadConfigOrExit();
const log = pino({ level: 'warn' });
try {
  const handle = await openDatabase(config, (error) => log.warn({ err: error }, 'postgres connection lost'));
  try {
    const result = await pruneExpired(handle.db, new Date());
    process.stdout.write(
      `pruned ${result.sessions} sessions, ${result.refreshTokens} refresh tokens, ${result.revocations} revocations\n`,
    );
  } finally {
    await handle.close();
  }
} catch (error) {
  process.stderr.write(`prune failed: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
