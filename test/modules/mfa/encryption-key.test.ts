// DATA_ENCRYPTION_KEY: production refuses to boot without it (env or KEYS_DIR/data-encryption.key), naming it;
// outside production a key file is generated (0600, 32 bytes base64url) with a loud warning and reused on restart;
// a malformed key is refused; the key never reaches the logs.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { type App, buildApp } from '../../../src/app.js';
import { ConfigError, loadConfig } from '../../../src/config.js';
import { totpFactors } from '../../../src/db/schema.js';
import { open } from '../../../src/lib/sealed.js';
import { DATA_ENCRYPTION_KEY_FILE } from '../../../src/plugins/secrets.js';
import { makeKeysDir } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import { createTestDatabase } from '../../helpers/database.js';
import { testServers } from '../../helpers/servers.js';
import { registerAndLogin } from '../../helpers/session-flow.js';
import { codeNow, enrolTotp, startMfaLogin, stepAlignedClock, verifyMfa } from '../../helpers/totp-flow.js';

const { databaseUrl: adminUrl, redisUrl } = await testServers();

async function newDatabase(t: Test): Promise<string> {
  const database = await createTestDatabase(adminUrl);
  t.teardown(() => database.drop());
  return database.url;
}

async function newDataDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-data-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The environment of a booting instance; production needs its stores, SMTP and a session secret. */
async function envFor(
  t: Test,
  options: { nodeEnv: 'production' | 'development'; keysDir: string; databaseUrl?: string },
): Promise<Record<string, string>> {
  return {
    NODE_ENV: options.nodeEnv,
    DATABASE_URL: options.databaseUrl ?? (await newDatabase(t)),
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    KEYS_DIR: options.keysDir,
    DATA_DIR: await newDataDir(t),
    ISSUER: 'http://auth.test',
    PRUNE_INTERVAL: '0',
    RATE_LIMIT_ENABLED: 'false',
    EMAIL_VERIFICATION: 'off',
    SESSION_SECRET: 'x'.repeat(32),
    // Required in production; never dialled here.
    SMTP_URL: 'smtp://127.0.0.1:9',
  };
}

/** Boots the app from an environment, capturing every log line (trace level). */
function boot(t: Test, env: Record<string, string>, clock?: TestClock) {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  const booted = buildApp(loadConfig(env), { clock, logger: { level: 'trace', stream } }).then((app) => {
    t.teardown(() => app.close());
    return app;
  });
  return { booted, lines };
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );
const newKey = () => randomBytes(32).toString('base64url');

t.test('production without DATA_ENCRYPTION_KEY or its file refuses to boot, naming it', async (t) => {
  const keysDir = await makeKeysDir(t);
  const env = await envFor(t, { nodeEnv: 'production', keysDir });
  const { booted } = boot(t, env);
  const error = await booted.then(
    () => undefined,
    (failure: Error) => failure,
  );
  t.ok(error, 'the boot failed');
  t.match(error?.message, /DATA_ENCRYPTION_KEY/, 'the message names DATA_ENCRYPTION_KEY');
  t.match(error?.message, DATA_ENCRYPTION_KEY_FILE, 'and the file it looked for');
  t.notOk(await exists(path.join(keysDir, DATA_ENCRYPTION_KEY_FILE)), 'production generated no key');

  // Controls: with the variable, or with the file, production boots.
  const withEnv = await boot(t, { ...env, DATA_ENCRYPTION_KEY: newKey() }).booted;
  t.ok(withEnv, 'boots with DATA_ENCRYPTION_KEY');
  const fileKey = newKey();
  await writeFile(path.join(keysDir, DATA_ENCRYPTION_KEY_FILE), `${fileKey}\n`, { mode: 0o600 });
  const withFile = await boot(t, { ...env, DATABASE_URL: await newDatabase(t) }).booted;
  t.strictSame(withFile.secrets.dataEncryption, Buffer.from(fileKey, 'base64url'), 'boots with the file, and uses it');
});

t.test('outside production a key file is generated (0600), announced loudly, and reused', async (t) => {
  const keysDir = await makeKeysDir(t);
  const file = path.join(keysDir, DATA_ENCRYPTION_KEY_FILE);
  t.notOk(await exists(file), 'no key file yet');
  const env = await envFor(t, { nodeEnv: 'development', keysDir });
  const clock = stepAlignedClock(TestClock);
  const first = boot(t, env, clock);
  const app: App = await first.booted;

  t.ok(await exists(file), 'generated into KEYS_DIR');
  t.equal((await stat(file)).mode & 0o777, 0o600, 'mode 0600');
  const key = (await readFile(file, 'utf8')).trim();
  t.match(key, /^[A-Za-z0-9_-]{43}$/, 'base64url');
  t.equal(Buffer.from(key, 'base64url').length, 32, '32 bytes');
  t.strictSame(app.secrets.dataEncryption, Buffer.from(key, 'base64url'), 'the app seals with it');
  const warnings = first.lines.filter((line) => /DATA_ENCRYPTION_KEY/.test(line));
  t.equal(warnings.length, 1, 'one line about it');
  t.match(warnings[0], /"level":40/, 'at warn');
  t.match(warnings[0], DATA_ENCRYPTION_KEY_FILE, 'naming the file');
  t.notOk(
    first.lines.some((line) => line.includes(key)),
    'the key is in no log line',
  );

  // A TOTP secret sealed under it, then a restart on the same folder and database: the same key, no new warning.
  const session = await registerAndLogin(app);
  const totp = await enrolTotp(app, clock, session.accessToken, session.account.password);
  const [row] = await app.db.select().from(totpFactors).where(eq(totpFactors.userId, session.account.id));
  t.equal(open(Buffer.from(key, 'base64url'), row?.secretSealed ?? '', session.account.id), totp.secret, 'sealed');
  await app.close();

  const second = boot(t, { ...env, REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:` }, clock);
  const restarted = await second.booted;
  t.equal((await readFile(file, 'utf8')).trim(), key, 'the file was not replaced');
  t.notOk(
    second.lines.some((line) => /DATA_ENCRYPTION_KEY/.test(line)),
    'no warning when the file exists',
  );
  const mfaToken = await startMfaLogin(restarted, session.account);
  const verified = await verifyMfa(restarted, { mfaToken, code: codeNow(totp.secret, clock) });
  t.equal(verified.statusCode, 200, 'the secret sealed before the restart still opens');
});

t.test('a malformed key is refused: by loadConfig in the variable, at boot in the file', async (t) => {
  const base = await envFor(t, { nodeEnv: 'development', keysDir: await makeKeysDir(t) });
  let plus = randomBytes(32).toString('base64');
  while (!/[+/]/.test(plus)) plus = randomBytes(32).toString('base64');
  for (const [label, value] of [
    ['too short', 'c2hvcnQ'],
    ['16 bytes', randomBytes(16).toString('base64url')],
    ['48 bytes', randomBytes(48).toString('base64url')],
    ['42 characters', newKey().slice(0, 42)],
    ['44 characters', `${newKey()}A`],
    ['hex', randomBytes(32).toString('hex')],
    ['standard base64 with + or /', plus],
    ['a space inside', `${newKey().slice(0, 20)} ${newKey().slice(0, 22)}`],
  ] as const) {
    let error: unknown;
    try {
      loadConfig({ ...base, DATA_ENCRYPTION_KEY: value });
    } catch (failure) {
      error = failure;
    }
    t.ok(error instanceof ConfigError, `${label}: refused by loadConfig`);
    const message = (error as Error | undefined)?.message ?? '';
    t.match(message, /DATA_ENCRYPTION_KEY/, `${label}: the message names the variable`);
    t.notOk(message.includes(value), `${label}: and does not echo the value`);
  }
  for (const good of [newKey(), `${newKey()}=`]) {
    t.equal(loadConfig({ ...base, DATA_ENCRYPTION_KEY: good }).dataEncryptionKey, good, 'a 32-byte key is accepted');
  }

  // A key file that does not hold 32 bytes: the boot fails naming the file, in development too (never replaced).
  const keysDir = await makeKeysDir(t);
  const file = path.join(keysDir, DATA_ENCRYPTION_KEY_FILE);
  const shortKey = randomBytes(16).toString('base64url');
  await writeFile(file, `${shortKey}\n`, { mode: 0o600 });
  for (const nodeEnv of ['development', 'production'] as const) {
    const { booted } = boot(t, await envFor(t, { nodeEnv, keysDir }));
    await t.rejects(booted, new RegExp(DATA_ENCRYPTION_KEY_FILE.replace('.', '\\.')), `${nodeEnv}: refused`);
  }
  t.equal((await readFile(file, 'utf8')).trim(), shortKey, 'the bad file is left for the operator');
});

t.test('the key, TOTP secrets and recovery codes never appear in the logs', async (t) => {
  const key = newKey();
  const clock = stepAlignedClock(TestClock);
  const env = {
    ...(await envFor(t, { nodeEnv: 'production', keysDir: await makeKeysDir(t) })),
    DATA_ENCRYPTION_KEY: key,
  };
  const { booted, lines } = boot(t, env, clock);
  const app = await booted;
  const session = await registerAndLogin(app);
  const totp = await enrolTotp(app, clock, session.accessToken, session.account.password);
  const mfaToken = await startMfaLogin(app, session.account);
  t.equal((await verifyMfa(app, { mfaToken, code: codeNow(totp.secret, clock) })).statusCode, 200);
  t.equal((await verifyMfa(app, { mfaToken, code: '000000' })).statusCode, 401, 'a failure is logged too');
  const next = await startMfaLogin(app, session.account);
  t.equal((await verifyMfa(app, { mfaToken: next, recoveryCode: totp.recoveryCodes[0] ?? '' })).statusCode, 200);

  t.ok(lines.length > 10, `the logs were captured (${lines.length} lines)`);
  const logs = lines.join('');
  const raw = Buffer.from(key, 'base64url');
  for (const [label, value] of [
    ['the key', key],
    ['the key in hex', raw.toString('hex')],
    ['the key in base64', raw.toString('base64').replace(/=+$/, '')],
    ['the TOTP secret', totp.secret],
    ['a recovery code', totp.recoveryCodes[0] ?? ''],
    ['the mfaToken', mfaToken],
    ['the password', session.account.password],
  ] as const) {
    t.notOk(logs.includes(value), `${label} is not logged`);
  }
});
