// `npm run db:migrate`: applies pending migrations to DATABASE_URL, or to the embedded PGlite in DATA_DIR.
import path from 'node:path';
import { openDatabase } from '../db/client.js';
import { loadConfigOrExit } from '../lib/cli.js';

/** One line for any error, including the AggregateError (empty message) that a refused connection produces. */
function oneLine(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  let message = error.message;
  if (!message && error instanceof AggregateError) message = error.errors.map(oneLine).join('; ');
  if (!message) message = typeof code === 'string' ? code : error.name;
  return message.replace(/\s+/g, ' ').trim();
}

/** The URL without its password, to name the database in a log line. */
function describeUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (url.password) url.password = '***';
  return url.toString();
}

async function main(): Promise<number> {
  const config = loadConfigOrExit();

  // Same location openPglite uses.
  const target = config.databaseUrl
    ? `postgres ${describeUrl(config.databaseUrl)}`
    : `embedded PGlite in ${path.resolve(config.dataDir, 'pglite')}`;
  try {
    const handle = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }, () => undefined);
    await handle.close();
  } catch (error) {
    process.stderr.write(`db:migrate failed on ${target}: ${oneLine(error)}\n`);
    return 1;
  }
  process.stdout.write(`Migrated ${target}\n`);
  return 0;
}

process.exit(await main());
