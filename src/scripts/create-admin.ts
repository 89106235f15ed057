// `ADMIN_PASSWORD=... npm run create-admin -- --email <email>`: creates the first admin, or promotes an existing user.
import { parseArgs } from 'node:util';
import pino from 'pino';
import { systemClock } from '../clock.js';
import { openDatabase } from '../db/client.js';
import { loadConfigOrExit } from '../lib/cli.js';
import { normalizeEmail } from '../modules/auth/auth.service.js';
import { createOrPromoteAdmin } from '../modules/users/users.service.js';
import { Passwords } from '../plugins/passwords.js';

const USAGE = 'usage: ADMIN_PASSWORD=... npm run create-admin -- --email <email>';
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { email: { type: 'string' } }, strict: true });
  const email = values.email ? normalizeEmail(values.email) : '';
  if (!EMAIL.test(email) || email.length > 254) throw new Error('a valid --email is required');
  const config = loadConfigOrExit('create-admin: ');
  const log = pino({ level: 'warn' });
  const handle = await openDatabase(config, (error) => log.warn({ err: error }, 'postgres connection lost'));
  try {
    const deps = { db: handle.db, passwords: new Passwords(config.argon2), clock: systemClock, log };
    const { user, outcome } = await createOrPromoteAdmin(deps, email, process.env.ADMIN_PASSWORD || undefined);
    const what = {
      created: 'created admin',
      promoted: 'promoted existing user to admin (password unchanged)',
      'already-admin': 'already an admin (nothing changed)',
    }[outcome];
    process.stdout.write(`${what}: ${user.email} (${user.id}), roles ${user.roles.join(', ')}\n`);
  } finally {
    await handle.close();
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`create-admin: ${(error as Error).message}\n${USAGE}\n`);
  process.exitCode = 1;
}
