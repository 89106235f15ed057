import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { createTestDatabase } from './helpers/database.js';
import { compiledEntry } from './helpers/server-process.js';
import { testServers } from './helpers/servers.js';

const repoRoot = path.resolve(import.meta.dirname, '..');

/** The problems loadConfig reports for an environment (fails the test if it does not throw a ConfigError). */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real entry point with exactly this environment (plus PATH/HOME), bounded in time. */
async function runServer(env: Record<string, string>, timeoutMs = 30_000): Promise<Exit> {
  const entry = await compiledEntry('src/server.ts');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not exit within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('defaults: an empty environment is a working development config', async (t) => {
  const config = loadConfig({});
  t.match(config, {
    env: 'development',
    isProduction: false,
    port: 3000,
    databaseUrl: undefined,
    dataDir: './data',
    redisUrl: undefined,
    keysDir: 'keys',
    issuer: 'http://localhost:3000',
    audience: 'http://localhost:3000',
    jwtAlgorithm: 'RS256',
    accessTokenTtl: 900,
    refreshTokenTtl: 1_209_600,
    sessionMaxAge: 2_592_000,
    refreshReuseInterval: 10,
    clockTolerance: 30,
    cookieSecure: true,
    revocationFeedToken: undefined,
    trustProxy: false,
    rateLimit: {
      enabled: true,
      loginPerIp: 10,
      loginFailures: 5,
      accountFailures: 100,
      passwordFailures: 5,
      registerPerIp: 20,
      refreshPerIp: 20,
    },
  });
  t.same(config.corsOrigins, []);
  t.ok(config.keyActivationDelay > config.jwksMaxAge, 'a new key is published longer than a JWKS is cached');
  t.ok(Object.isFrozen(config), 'config cannot be changed after boot');
});

t.test('an empty value counts as unset', async (t) => {
  const config = loadConfig({ PORT: '', ACCESS_TOKEN_TTL: '  ' });
  t.equal(config.port, 3000);
  t.equal(config.accessTokenTtl, 900);
});

t.test('values are read from the environment', async (t) => {
  const config = loadConfig({
    PORT: '8080',
    DATABASE_URL: 'postgresql://app@db.internal:5432/auth',
    REDIS_URL: 'rediss://cache.internal:6380',
    ACCESS_TOKEN_TTL: '300',
    COOKIE_SECURE: 'false',
    JWT_ALG: 'ES256',
    CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
  });
  t.equal(config.port, 8080);
  t.equal(config.databaseUrl, 'postgresql://app@db.internal:5432/auth');
  t.equal(config.redisUrl, 'rediss://cache.internal:6380');
  t.equal(config.accessTokenTtl, 300);
  t.equal(config.cookieSecure, false);
  t.equal(config.jwtAlgorithm, 'ES256');
  t.same(config.corsOrigins, ['https://app.example.com', 'http://localhost:5173']);
});

t.test('each bad value is rejected with a message naming the variable', async (t) => {
  const cases: [string, string][] = [
    ['ACCESS_TOKEN_TTL', 'abc'],
    ['PORT', '99999'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'postgres://db.internal:notaport/auth'],
    ['JWT_ALG', 'HS256'],
    ['COOKIE_SECURE', 'maybe'],
    ['TRUST_PROXY', 'garbage'],
    ['CORS_ORIGINS', 'https://app.example.com/path'],
  ];
  for (const [name, value] of cases) {
    t.throws(() => loadConfig({ [name]: value }), ConfigError, `${name}=${value} is refused`);
    const problems = problemsOf({ [name]: value });
    t.equal(problems.length, 1, `${name}=${value}: one problem`);
    t.match(problems[0], new RegExp(`^${name}\\b`), `${name}=${value}: the problem names ${name}`);
  }
});

t.test('the messages say what is expected', async (t) => {
  t.match(problemsOf({ JWT_ALG: 'HS256' })[0], /RS256/);
  t.match(problemsOf({ COOKIE_SECURE: 'maybe' })[0], /true or false/);
  t.match(problemsOf({ PORT: '99999' })[0], /0\.\.65535/);
  t.match(problemsOf({ CORS_ORIGINS: 'https://ok.example.com,https://bad.example.com/x' })[0], /bad\.example\.com/);
});

t.test('the ConfigError message lists one problem per line', async (t) => {
  const error = t.throws(() => loadConfig({ PORT: 'abc', JWT_ALG: 'HS256' })) as ConfigError;
  const lines = error.message.split('\n');
  t.equal(lines.length, 3);
  t.match(lines[1], /PORT/);
  t.match(lines[2], /JWT_ALG/);
});

t.test('multiple bad values are listed together', async (t) => {
  const problems = problemsOf({ ACCESS_TOKEN_TTL: 'abc', PORT: '99999', JWT_ALG: 'HS256', COOKIE_SECURE: 'maybe' });
  t.equal(problems.length, 4);
  for (const name of ['ACCESS_TOKEN_TTL', 'PORT', 'JWT_ALG', 'COOKIE_SECURE']) {
    t.ok(
      problems.some((problem) => problem.startsWith(name)),
      `${name} is listed`,
    );
  }
  const semantic = problemsOf({ TRUST_PROXY: 'garbage', CORS_ORIGINS: 'https://a.example.com/x' });
  t.equal(semantic.length, 2, 'TRUST_PROXY and CORS_ORIGINS are listed together');
});

t.test('a type error and a format error are listed together', async (t) => {
  const problems = problemsOf({ PORT: 'abc', TRUST_PROXY: 'garbage' });
  t.ok(problems.some((problem) => problem.startsWith('PORT')));
  t.ok(problems.some((problem) => problem.startsWith('TRUST_PROXY')));
});

t.test('a number that is not a whole number is rejected, not truncated', async (t) => {
  for (const value of ['1.5', '1e3', 'true']) {
    t.throws(() => loadConfig({ ACCESS_TOKEN_TTL: value }), ConfigError, `ACCESS_TOKEN_TTL=${value} is refused`);
  }
});

t.test('a refused secret is not echoed into the message', async (t) => {
  t.notMatch(problemsOf({ DATABASE_URL: 'mysql://app:hunter2@db/auth' }).join('\n'), /hunter2/);
  t.notMatch(problemsOf({ REVOCATION_FEED_TOKEN: 'too-short-secret' }).join('\n'), /too-short-secret/);
});

t.test('a malformed database URL is refused without echoing it', async (t) => {
  const [problem] = problemsOf({ DATABASE_URL: 'postgres://app:hunter2@[::1/auth' });
  t.match(problem, /^DATABASE_URL\b/);
  t.notMatch(problem, /hunter2/);
});

const SMTP = 'smtps://mailer:hunter2@smtp.example.com:465';

t.test('production refuses embedded stores, insecure cookies and the outbox', async (t) => {
  const noDatabase = problemsOf({ NODE_ENV: 'production', REDIS_URL: 'redis://cache:6379', SMTP_URL: SMTP });
  t.equal(noDatabase.length, 1);
  t.match(noDatabase[0], /^DATABASE_URL\b.*production/);

  const noRedis = problemsOf({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', SMTP_URL: SMTP });
  t.equal(noRedis.length, 1);
  t.match(noRedis[0], /^REDIS_URL\b.*production/);

  const noSmtp = problemsOf({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', REDIS_URL: 'redis://c' });
  t.same(noSmtp, ['SMTP_URL: required when NODE_ENV=production'], 'no SMTP_URL: refused, naming SMTP_URL');

  const none = problemsOf({ NODE_ENV: 'production' });
  t.equal(none.length, 3, 'every missing URL is named at once');
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'SMTP_URL']) {
    t.ok(
      none.some((problem) => problem.startsWith(name)),
      `${name} is named`,
    );
  }

  const insecure = problemsOf({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://db/auth',
    REDIS_URL: 'redis://cache:6379',
    SMTP_URL: SMTP,
    COOKIE_SECURE: 'false',
  });
  t.equal(insecure.length, 1);
  t.match(insecure[0], /^COOKIE_SECURE\b/);

  const ok = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://db/auth',
    REDIS_URL: 'redis://cache:6379',
    SMTP_URL: SMTP,
  });
  t.equal(ok.isProduction, true);
  t.equal(ok.cookieSecure, true);
  t.equal(ok.mail.smtpUrl, SMTP);
});

t.test('mail: defaults', async (t) => {
  const config = loadConfig({});
  t.same(config.mail, {
    smtpUrl: undefined,
    from: 'no-reply@localhost',
    appUrl: 'http://localhost:3000',
    verification: 'optional',
    ttl: { verifyEmail: 86_400, passwordReset: 1800, emailChange: 3600 },
  });
  t.equal(config.rateLimit.mailPerIp, 10);
  t.equal(config.rateLimit.mailPerEmail, 3);
  t.equal(loadConfig({ PORT: '4123' }).mail.appUrl, 'http://localhost:4123', 'APP_URL follows the default issuer');
});

t.test('mail: APP_URL defaults to the issuer, never with a trailing slash', async (t) => {
  t.equal(loadConfig({ ISSUER: 'https://auth.example.com' }).mail.appUrl, 'https://auth.example.com');
  t.equal(loadConfig({ ISSUER: 'https://auth.example.com/' }).mail.appUrl, 'https://auth.example.com');
  t.equal(loadConfig({ ISSUER: 'https://example.com/auth/' }).mail.appUrl, 'https://example.com/auth');
  const explicit = loadConfig({ ISSUER: 'https://auth.example.com', APP_URL: 'https://app.example.com/portal//' });
  t.equal(explicit.mail.appUrl, 'https://app.example.com/portal', 'a set APP_URL wins, trimmed');
  t.equal(explicit.issuer, 'https://auth.example.com', 'and leaves the issuer alone');
  t.equal(loadConfig({ APP_URL: '' }).mail.appUrl, 'http://localhost:3000', 'an empty APP_URL counts as unset');
  for (const value of ['ftp://app.example.com', 'app.example.com', 'https://app example.com']) {
    t.match(problemsOf({ APP_URL: value })[0], /^APP_URL\b/, `APP_URL=${value} is refused`);
  }
});

t.test('mail: MAIL_FROM defaults to no-reply@<issuer host>, and must be one header line with an address', async (t) => {
  t.equal(loadConfig({ ISSUER: 'https://auth.example.com:8443/x' }).mail.from, 'no-reply@auth.example.com');
  t.equal(loadConfig({ MAIL_FROM: 'Accounts <accounts@example.com>' }).mail.from, 'Accounts <accounts@example.com>');
  t.equal(loadConfig({ MAIL_FROM: 'accounts@example.com' }).mail.from, 'accounts@example.com');
  for (const value of ['accounts', 'a@example.com\r\nBcc: victim@example.com', 'Accounts <accounts>']) {
    t.match(problemsOf({ MAIL_FROM: value })[0], /^MAIL_FROM\b/, `MAIL_FROM=${JSON.stringify(value)} is refused`);
  }
});

t.test('mail: SMTP_URL must be smtp:// or smtps://, and is never echoed', async (t) => {
  t.equal(loadConfig({ SMTP_URL: 'smtp://127.0.0.1:2525' }).mail.smtpUrl, 'smtp://127.0.0.1:2525');
  t.equal(loadConfig({ SMTP_URL: SMTP }).mail.smtpUrl, SMTP);
  for (const value of [
    'http://mailer:hunter2@smtp.example.com',
    'mailer:hunter2@smtp.example.com',
    'smtp://mailer:hunter2@[::1',
  ]) {
    const problems = problemsOf({ SMTP_URL: value });
    t.equal(problems.length, 1, `SMTP_URL=${value}: one problem`);
    t.match(problems[0], /^SMTP_URL: /, 'named, without its value');
    t.notMatch(problems[0], /hunter2/, 'the credentials are not echoed');
  }
  t.match(problemsOf({ SMTP_URL: 'http://x' })[0], /smtp:\/\/ or smtps:\/\//, 'the message says what is expected');
});

t.test('mail: EMAIL_VERIFICATION is off, optional or required', async (t) => {
  for (const value of ['off', 'optional', 'required'] as const) {
    t.equal(loadConfig({ EMAIL_VERIFICATION: value }).mail.verification, value);
  }
  for (const value of ['yes', 'true', 'REQUIRED', 'none']) {
    const [problem] = problemsOf({ EMAIL_VERIFICATION: value });
    t.match(problem, /^EMAIL_VERIFICATION=.*expected one of off, optional, required/, `${value} is refused`);
  }
});

t.test('mail: lifetimes and budgets are whole numbers of at least 1', async (t) => {
  const config = loadConfig({
    VERIFY_EMAIL_TTL: '600',
    PASSWORD_RESET_TTL: '300',
    EMAIL_CHANGE_TTL: '900',
    RATE_LIMIT_MAIL_PER_IP: '50',
    RATE_LIMIT_MAIL_PER_EMAIL: '5',
  });
  t.same(config.mail.ttl, { verifyEmail: 600, passwordReset: 300, emailChange: 900 });
  t.equal(config.rateLimit.mailPerIp, 50);
  t.equal(config.rateLimit.mailPerEmail, 5);
  const names = [
    'VERIFY_EMAIL_TTL',
    'PASSWORD_RESET_TTL',
    'EMAIL_CHANGE_TTL',
    'RATE_LIMIT_MAIL_PER_IP',
    'RATE_LIMIT_MAIL_PER_EMAIL',
  ];
  for (const name of names) {
    for (const value of ['0', '-1', '1.5', 'abc']) {
      t.match(problemsOf({ [name]: value })[0], new RegExp(`^${name}\\b`), `${name}=${value} is refused`);
    }
  }
});

t.test('COOKIE_SECURE=false is allowed outside production', async (t) => {
  t.equal(loadConfig({ NODE_ENV: 'development', COOKIE_SECURE: 'false' }).cookieSecure, false);
  t.equal(loadConfig({ NODE_ENV: 'test', COOKIE_SECURE: 'false' }).cookieSecure, false);
});

t.test('AUDIENCE defaults to ISSUER', async (t) => {
  t.equal(loadConfig({ ISSUER: 'https://auth.example.com' }).audience, 'https://auth.example.com');
  const explicit = loadConfig({ ISSUER: 'https://auth.example.com', AUDIENCE: 'https://api.example.com' });
  t.equal(explicit.issuer, 'https://auth.example.com');
  t.equal(explicit.audience, 'https://api.example.com');
});

t.test('ISSUER defaults to http://localhost on the configured PORT', async (t) => {
  const onPort = loadConfig({ PORT: '4123' });
  t.equal(onPort.issuer, 'http://localhost:4123', 'the port the server actually listens on');
  t.equal(onPort.audience, 'http://localhost:4123', 'and AUDIENCE follows it');
  t.equal(loadConfig({ PORT: '' }).issuer, 'http://localhost:3000', 'an empty PORT falls back to 3000');
  t.equal(loadConfig({ ISSUER: '' }).issuer, 'http://localhost:3000', 'an empty ISSUER counts as unset');

  const explicit = loadConfig({ PORT: '4123', ISSUER: 'https://auth.example.com' });
  t.equal(explicit.issuer, 'https://auth.example.com', 'a set ISSUER wins over the port');
  t.equal(explicit.audience, 'https://auth.example.com');

  const bad = problemsOf({ PORT: '4123', ISSUER: 'ftp://auth.example.com' });
  t.equal(bad.length, 1, 'a bad ISSUER is still refused');
  t.match(bad[0], /^ISSUER="ftp:\/\/auth\.example\.com": expected an http\(s\) URL/);
});

t.test('TRUST_PROXY: true, false, a hop count, or addresses/CIDRs', async (t) => {
  t.equal(loadConfig({}).trustProxy, false);
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true);
  t.equal(loadConfig({ TRUST_PROXY: 'false' }).trustProxy, false);
  t.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2);
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1,fd00::/8' }).trustProxy, [
    '10.0.0.0/8',
    '127.0.0.1',
    '::1',
    'fd00::/8',
  ]);
  for (const value of ['garbage', '10.0.0.0/8,proxy.internal', 'yes']) {
    t.match(problemsOf({ TRUST_PROXY: value })[0], /^TRUST_PROXY\b/, `TRUST_PROXY=${value} is refused`);
  }
});

t.test('the server exits non-zero with one line naming a bad variable', async (t) => {
  const { code, stdout, stderr } = await runServer({ ACCESS_TOKEN_TTL: 'abc' });
  t.not(code, 0, 'exit code is non-zero');
  const output = `${stdout}${stderr}`;
  const naming = output.split('\n').filter((line) => line.includes('ACCESS_TOKEN_TTL'));
  t.equal(naming.length, 1, 'exactly one line names ACCESS_TOKEN_TTL');
  t.match(naming[0], /expected a whole number/);
  t.notMatch(output, /^\s+at /m, 'no stack trace');
});

t.test('production with an empty KEYS_DIR refuses to start', async (t) => {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const keysDir = await mkdtemp(path.join(tmpdir(), 'auth-empty-keys-'));
  t.teardown(() => rm(keysDir, { recursive: true, force: true }));

  const { code, stdout, stderr } = await runServer({
    NODE_ENV: 'production',
    DATABASE_URL: database.url,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: `test:config:${process.pid}:`,
    KEYS_DIR: keysDir,
    SMTP_URL: 'smtp://127.0.0.1:2525',
    PORT: '0',
  });
  t.not(code, 0, 'exit code is non-zero');
  t.match(`${stdout}${stderr}`, /no RS256 private key/i, 'the message names the missing key');
  t.notMatch(`${stdout}${stderr}`, /Server listening/, 'it never listened');
});
