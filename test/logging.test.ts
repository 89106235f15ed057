// No secret ever reaches a log (issue item 2): the log stream of a full flow at level trace, with forced database
// failures, holds no password, argon2 hash, access or refresh token, cookie value, CSRF value or action token (the
// mailed links, and the pages they open, whose URLs carry the token).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import t from 'tap';
import { buildApp, loggerOptions } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { makeKeysDir } from './helpers/app.js';
import { createTestDatabase } from './helpers/database.js';
import { startProxy } from './helpers/proxy.js';
import { testServers } from './helpers/servers.js';
import { bearer, COOKIES, cookieValues, STRONG_PASSWORD, uniqueEmail } from './helpers/session-flow.js';
import { startSmtpSink } from './helpers/smtp.js';

const lines: string[] = [];
const stream = new Writable({
  write(chunk, _encoding, callback) {
    lines.push(String(chunk));
    callback();
  },
});

const servers = await testServers();
const database = await createTestDatabase(servers.databaseUrl);
t.teardown(() => database.drop());
const target = new URL(database.url);
const proxy = await startProxy(target.hostname, Number(target.port || 5432));
t.teardown(() => proxy.close());

// Mail goes to a real SMTP server (the outbox would log its links at warn on purpose), from a data folder of our own.
const smtp = await startSmtpSink(t);
const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-logging-'));
t.teardown(() => rm(dataDir, { recursive: true, force: true }));

const config = loadConfig({
  NODE_ENV: 'test',
  LOG_LEVEL: 'trace',
  DATABASE_URL: proxy.url(database.url),
  REDIS_URL: servers.redisUrl,
  REDIS_KEY_PREFIX: `test:logging:${process.pid}:`,
  KEYS_DIR: await makeKeysDir(t),
  ISSUER: 'http://auth.test',
  RATE_LIMIT_ENABLED: 'false',
  PRUNE_INTERVAL: '0',
  SMTP_URL: smtp.url,
  DATA_DIR: dataDir,
});
// The app's own logger options (redaction, serializers), only written to our stream.
const app = await buildApp(config, {
  logger: { ...(loggerOptions(config) as object), level: 'trace', stream },
});
t.teardown(() => app.close());

const secrets = new Set<string>();
const keep = (...values: (string | undefined)[]) => {
  for (const value of values) if (value) secrets.add(value);
};

t.test('a full flow, then forced database failures: no secret in the log', async (t) => {
  const email = uniqueEmail('log');
  const newPassword = 'an entirely different passphrase';
  keep(STRONG_PASSWORD, newPassword);

  const registered = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email, password: STRONG_PASSWORD, name: 'Ann' },
  });
  t.equal(registered.statusCode, 201, 'register');

  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: STRONG_PASSWORD } });
  t.equal(login.statusCode, 200, 'login (body)');
  const { accessToken, refreshToken } = login.json();
  keep(accessToken, refreshToken);

  const cookieLogin = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email, password: STRONG_PASSWORD, transport: 'cookie' },
  });
  t.equal(cookieLogin.statusCode, 200, 'login (cookie)');
  const cookies = cookieValues(cookieLogin);
  keep(...Object.values(cookies), cookieLogin.json().csrfToken);
  const csrf = cookies[COOKIES.csrf] ?? '';

  const refreshed = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } });
  t.equal(refreshed.statusCode, 200, 'refresh (body)');
  keep(refreshed.json().accessToken, refreshed.json().refreshToken);

  const cookieRefresh = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    cookies,
    headers: { 'x-csrf-token': csrf },
  });
  t.equal(cookieRefresh.statusCode, 200, 'refresh (cookie)');
  const rotated = cookieValues(cookieRefresh);
  keep(...Object.values(rotated), cookieRefresh.json().csrfToken);

  const bearerToken = refreshed.json().accessToken;
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(bearerToken) })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: '/users/me', cookies: rotated })).statusCode, 200, 'me (cookie)');

  const changed = await app.inject({
    method: 'POST',
    url: '/auth/password',
    headers: bearer(bearerToken),
    payload: { currentPassword: STRONG_PASSWORD, newPassword },
  });
  t.equal(changed.statusCode, 204, 'password change');
  const wrong = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email, password: STRONG_PASSWORD },
  });
  t.equal(wrong.statusCode, 401, 'the old password fails');

  const relogin = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: newPassword } });
  t.equal(relogin.statusCode, 200);
  keep(relogin.json().accessToken, relogin.json().refreshToken);
  const logout = await app.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: bearer(relogin.json().accessToken),
    payload: { refreshToken: relogin.json().refreshToken },
  });
  t.equal(logout.statusCode, 204, 'logout (body)');
  const cookieLogout = await app.inject({
    method: 'POST',
    url: '/auth/logout',
    cookies: rotated,
    headers: { 'x-csrf-token': rotated[COOKIES.csrf] ?? '' },
  });
  t.equal(cookieLogout.statusCode, 204, 'logout (cookie)');

  // Account links: the verification mailed at registration, then a reset request, its page, and the reset.
  await app.accounts.settled();
  const verification = (await smtp.waitFor(email, 1))[0]?.token;
  keep(verification);
  t.equal(
    (await app.inject({ method: 'GET', url: `/verify-email?token=${verification}` })).statusCode,
    200,
    'the verification page (its URL holds the token)',
  );
  const verified = await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: verification } });
  t.equal(verified.statusCode, 200, 'verify email');
  const resetAsked = await app.inject({ method: 'POST', url: '/auth/password-reset/request', payload: { email } });
  t.equal(resetAsked.statusCode, 202, 'reset request');
  await app.accounts.settled();
  const resetToken = (await smtp.waitFor(email, 2))[1]?.token;
  t.ok(resetToken, 'the reset link was mailed');
  keep(resetToken);
  const resetPage = await app.inject({
    method: 'GET',
    url: `/reset-password?token=${resetToken}`,
    headers: { referer: 'http://auth.test/somewhere' },
  });
  t.equal(resetPage.statusCode, 200, 'the reset page (its URL holds the token)');
  const resetPassword = 'a third passphrase, after the reset';
  keep(resetPassword);
  const reset = await app.inject({
    method: 'POST',
    url: '/auth/password-reset',
    payload: { token: resetToken, newPassword: resetPassword },
  });
  t.equal(reset.statusCode, 204, 'password reset');
  const reused = await app.inject({
    method: 'POST',
    url: '/auth/password-reset',
    payload: { token: resetToken, newPassword: 'and yet another passphrase' },
  });
  t.equal(reused.statusCode, 400, 'a used reset token is refused (and logged as a client error)');
  t.equal(
    (await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: resetPassword } })).statusCode,
    200,
    'the reset password logs in',
  );

  // A query Postgres refuses, after the password was hashed: a CHECK constraint added behind the app's back.
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  try {
    await admin.query(
      `ALTER TABLE users ADD CONSTRAINT no_explosions CHECK (name IS DISTINCT FROM 'explode') NOT VALID`,
    );
  } finally {
    await admin.end();
  }
  const refused = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email: uniqueEmail('refused'), password: STRONG_PASSWORD, name: 'explode' },
  });
  t.equal(refused.statusCode, 500, 'a refused query is a 500');

  // A control character in a string field: a 400 now, but a database error once.
  const nul = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email: uniqueEmail('nul'), password: STRONG_PASSWORD, name: 'A\u0000nn' },
  });
  t.ok(nul.statusCode === 400 || nul.statusCode === 500, `NUL in name: ${nul.statusCode}`);

  // Postgres unreachable mid-flow: the insert after hashing and the login lookup both fail.
  await proxy.cut();
  try {
    const down = await app.inject({
      method: 'POST',
      url: '/auth/register',
      payload: { email: uniqueEmail('down'), password: STRONG_PASSWORD },
    });
    t.equal(down.statusCode, 503, 'register while Postgres is down');
    const downLogin = await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { email, password: newPassword },
    });
    t.equal(downLogin.statusCode, 503, 'login while Postgres is down');
  } finally {
    await proxy.restore();
  }

  const text = lines.join('');
  t.ok(lines.length > 20, `the log was captured (${lines.length} lines)`);
  t.match(text, /"sqlState":"23514"/, 'the refused query is logged by its SQL state');
  t.match(text, /dependency unavailable/, 'the outage is logged');
  t.match(text, /reset-password\?token=\[redacted\]/, 'the page URL is logged with its token cut out');
  t.match(text, /"msg":"mail sent"/, 'the mail deliveries are logged');
  t.notMatch(text, /\$argon2id\$/, 'no argon2 hash');
  t.notMatch(text, /Failed query|params:/, 'no query text or parameters');
  for (const secret of secrets) {
    t.notOk(text.includes(secret), `no secret ${secret.slice(0, 6)}… (${secret.length} chars)`);
  }
  t.ok(secrets.size >= 10, `secrets collected (${secrets.size})`);
});

t.test('one line per completed request, with its id, method, URL, status and time; probes stay silent', async (t) => {
  const parsed = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  const linesOf = (requestId: string) => parsed().filter((line) => line.reqId === requestId);

  const jwks = await app.inject({ method: 'GET', url: '/.well-known/jwks.json?probe=1' });
  const id = String(jwks.headers['x-request-id']);
  const completed = linesOf(id).filter((line) => line.msg === 'request completed');
  t.equal(completed.length, 1, 'exactly one completed line');
  t.match(completed[0], {
    level: 30,
    reqId: id,
    req: { method: 'GET', url: '/.well-known/jwks.json?probe=1', remoteAddress: String },
    res: { statusCode: 200 },
    responseTime: Number,
  });
  t.ok(
    linesOf(id).some((line) => line.msg === 'incoming request' && line.level === 20),
    'the arrival line, at debug',
  );

  // Written past the redaction (see OneLinePerRequest): the secrets a request carries are not among its fields.
  const login = await app.inject({
    method: 'POST',
    url: '/auth/login',
    headers: { authorization: 'Bearer not-a-token', cookie: `${COOKIES.access}=cookie-value` },
    payload: { email: uniqueEmail('nobody'), password: 'a password to keep out' },
  });
  const loginLines = JSON.stringify(linesOf(String(login.headers['x-request-id'])));
  for (const secret of ['not-a-token', 'cookie-value', 'a password to keep out'])
    t.notOk(loginLines.includes(secret), `no ${secret} in the request's lines`);

  const probe = await app.inject({ method: 'GET', url: '/health/live' });
  t.equal(probe.statusCode, 200);
  t.same(linesOf(String(probe.headers['x-request-id'])), [], 'a probe (logLevel warn) writes no line');
});
