// Mail delivery through a real SMTP server (contract: Accounts, v1.1): the messages' links and sender; a transient
// refusal retried until the mail arrives once; a permanent one given up at once, logged without the link, its token
// voided; SMTP down: the answer still prompt, nothing half-done; and shutdown while a retry waits neither hangs nor
// leaves a live token behind.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { eq } from 'drizzle-orm';
import pg from 'pg';
import t from 'tap';
import { type App, buildApp, loggerOptions } from '../../../src/app.js';
import { loadConfig } from '../../../src/config.js';
import { actionTokens, users } from '../../../src/db/schema.js';
import { makeKeysDir, type Teardown } from '../../helpers/app.js';
import { createTestDatabase } from '../../helpers/database.js';
import { freePort } from '../../helpers/server-process.js';
import { testServers } from '../../helpers/servers.js';
import {
  type Account,
  bearer,
  login,
  loginRequest,
  register,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../../helpers/session-flow.js';
import { type ReceivedMail, type SmtpSink, startSmtpSink } from '../../helpers/smtp.js';

interface LogLine {
  level: number;
  msg: string;
  mail?: string;
  attempt?: number;
  attempts?: number;
  code?: string;
  responseCode?: number;
  [key: string]: unknown;
}

interface LoggedApp {
  app: App;
  databaseUrl: string;
  /** Everything logged so far, as written. */
  text(): string;
  /** The parsed lines so far. */
  lines(): LogLine[];
  /** Closes the app (once; the teardown does it otherwise). */
  close(): Promise<void>;
}

const servers = await testServers();

/** The real app on a fresh database, logging (redaction and serializers as in production) to a captured stream. */
async function buildLoggedApp(
  t: Teardown,
  env: Record<string, string>,
  retryDelaysMs: readonly number[] = [50, 100],
): Promise<LoggedApp> {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  const database = await createTestDatabase(servers.databaseUrl);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-delivery-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'trace',
    DATABASE_URL: database.url,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: `test:delivery:${randomBytes(6).toString('hex')}:`,
    KEYS_DIR: await makeKeysDir(t),
    ISSUER: 'http://auth.test',
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
    DATA_DIR: dataDir,
    ...env,
  });
  const app = await buildApp(config, {
    logger: { ...(loggerOptions(config) as object), level: 'trace', stream },
    mailRetryDelaysMs: retryDelaysMs,
  });
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= app.close();
    return closing;
  };
  t.teardown(async () => {
    await close();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as LogLine);
  return { app, databaseUrl: database.url, text, lines, close };
}

const ERROR = 50;
const WARN = 40;

const requestReset = (app: App, email: string) =>
  app.inject({ method: 'POST', url: '/auth/password-reset/request', payload: { email } });

async function liveTokens(app: App, userId: string) {
  return app.db.select().from(actionTokens).where(eq(actionTokens.userId, userId));
}

async function userRow(app: App, userId: string) {
  const [row] = await app.db.select().from(users).where(eq(users.id, userId));
  return row;
}

/** The URLs in a message's HTML part (entities for the characters escapeHtml touches decoded). */
function htmlLinks(mail: ReceivedMail): string[] {
  const decoded = mail.html.replace(/&#(\d+);/g, (_match, code: string) => String.fromCharCode(Number(code)));
  return decoded.match(/https?:\/\/[^\s<>"']+/g) ?? [];
}

// Anything that looks like an action token (≥ 256 bits of base64url), or a link to one of the pages.
const TOKEN_LIKE = /[A-Za-z0-9_-]{43,}/;
const LINK_LIKE = /(verify-email|reset-password|confirm-email)\?token=/;

const MAIL_FROM = 'Accounts <accounts@mail.example.com>';

t.test('messages: one link in the text part, the same in the HTML part, sent from MAIL_FROM', async (t) => {
  const smtp = await startSmtpSink(t);
  const { app } = await buildLoggedApp(t, {
    SMTP_URL: smtp.url,
    MAIL_FROM,
    APP_URL: 'https://app.example.com/portal/',
  });
  const account = await register(app);
  t.equal((await requestReset(app, account.email)).statusCode, 202);
  await app.accounts.settled();
  const caller = await login(app, account);
  const newEmail = uniqueEmail('moved');
  const change = await app.inject({
    method: 'POST',
    url: '/auth/email',
    headers: bearer(caller.accessToken),
    payload: { newEmail, currentPassword: STRONG_PASSWORD },
  });
  t.equal(change.statusCode, 202);
  await app.accounts.settled();

  const [verification, reset, notice] = smtp.to(account.email);
  const [confirmation] = smtp.to(newEmail);
  const linked: [string, ReceivedMail | undefined][] = [
    ['verify-email', verification],
    ['reset-password', reset],
    ['confirm-email', confirmation],
  ];
  for (const [page, mail] of linked) {
    t.ok(mail, `a ${page} message arrived`);
    if (!mail) continue;
    t.equal(mail.links.length, 1, `${page}: the text part holds exactly one link`);
    t.match(
      mail.links[0],
      new RegExp(`^https://app\\.example\\.com/portal/${page}\\?token=[A-Za-z0-9_-]{43,}$`),
      `${page}: <APP_URL>/${page}?token=T (no doubled slash)`,
    );
    t.same(htmlLinks(mail), mail.links, `${page}: the HTML part links to the same URL, and nothing else`);
    t.ok(mail.html.includes(`href="${mail.links[0]}"`), `${page}: as an anchor`);
    const from = mail.parsed.from?.value[0];
    t.equal(from?.address, 'accounts@mail.example.com', `${page}: From is MAIL_FROM's address`);
    t.equal(from?.name, 'Accounts', `${page}: with its name`);
  }
  t.ok(notice, 'the old address got a notice');
  t.equal(notice?.links.length, 0, 'the notice holds no link in its text');
  t.same(notice ? htmlLinks(notice) : undefined, [], 'nor in its HTML');
  t.equal(notice?.parsed.from?.value[0]?.address, 'accounts@mail.example.com', 'From is MAIL_FROM');
});

t.test('SMTP refusals', async (t) => {
  const smtp = await startSmtpSink(t);
  const logged = await buildLoggedApp(t, { SMTP_URL: smtp.url });
  const { app } = logged;

  t.test('a transient refusal (451) is retried; the mail arrives once', async (t) => {
    const account = await register(app);
    await app.accounts.settled();
    const attemptsBefore = smtp.attempts;
    const linesBefore = logged.lines().length;
    smtp.refuseNext(1, 451);
    t.equal((await requestReset(app, account.email)).statusCode, 202);
    await app.accounts.settled();

    t.equal(smtp.attempts - attemptsBefore, 2, 'one refusal, one retry');
    const resets = smtp.to(account.email).filter((mail) => mail.links[0]?.includes('/reset-password?'));
    t.equal(resets.length, 1, 'delivered exactly once');
    const lines = logged.lines().slice(linesBefore);
    const retried = lines.filter((line) => line.msg === 'mail delivery failed; will retry');
    t.equal(retried.length, 1, 'one retry logged');
    t.match(retried[0], { level: WARN, mail: 'password_reset', attempt: 1, responseCode: 451 });
    t.match(
      lines.find((line) => line.msg === 'mail sent'),
      { mail: 'password_reset', attempts: 2 },
      'then sent',
    );
    t.notOk(
      lines.some((line) => line.msg === 'mail not delivered'),
      'not given up',
    );

    const token = resets[0]?.token as string;
    t.notOk(logged.text().includes(token), 'the token is in no log line');
    const reset = await app.inject({
      method: 'POST',
      url: '/auth/password-reset',
      payload: { token, newPassword: 'a brand new passphrase' },
    });
    t.equal(reset.statusCode, 204, 'the delivered link works');
  });

  t.test('a permanent refusal (550) is not retried, is logged without the link, and voids the token', async (t) => {
    const account = await register(app);
    await app.accounts.settled();
    const attemptsBefore = smtp.attempts;
    const logBefore = logged.text().length;
    const linesBefore = logged.lines().length;
    smtp.refuseNext(1, 550);
    t.equal((await requestReset(app, account.email)).statusCode, 202);
    await app.accounts.settled();

    t.equal(smtp.attempts - attemptsBefore, 1, 'one attempt, no retry');
    t.equal(smtp.to(account.email).filter((mail) => mail.links[0]?.includes('/reset-password?')).length, 0);
    const lines = logged.lines().slice(linesBefore);
    t.notOk(
      lines.some((line) => line.msg === 'mail delivery failed; will retry'),
      'no retry',
    );
    const failure = lines.filter((line) => line.msg === 'mail not delivered');
    t.equal(failure.length, 1, 'the failure is logged once');
    t.match(failure[0], { level: ERROR, mail: 'password_reset', attempts: 1, responseCode: 550 });
    const text = logged.text().slice(logBefore);
    t.notMatch(text, LINK_LIKE, 'no link in the log');
    t.notMatch(text, TOKEN_LIKE, 'nothing token-like in the log');
    t.notMatch(text, /Try again later/, 'nor the server reply text');

    const tokens = (await liveTokens(app, account.id)).filter((row) => row.purpose === 'password_reset');
    t.same(tokens, [], 'the undelivered token is gone (void)');
  });
});

t.test('SMTP down: prompt 202, the failure logged after the retries, nothing half-done', async (t) => {
  const closedPort = await freePort();
  const logged = await buildLoggedApp(t, { SMTP_URL: `smtp://user:hunter2@127.0.0.1:${closedPort}` }, [50, 100]);
  const { app } = logged;

  // Registration still answers; its verification token dies with its mail.
  const account: Account = await register(app);
  await app.accounts.settled();
  const before = await userRow(app, account.id);
  t.same(await liveTokens(app, account.id), [], 'registration: no live verification token left');

  for (const url of ['/auth/password-reset/request', '/auth/verify-email/request']) {
    const linesBefore = logged.lines().length;
    const started = performance.now();
    const response = await app.inject({ method: 'POST', url, payload: { email: account.email } });
    const elapsed = performance.now() - started;
    t.equal(response.statusCode, 202, `${url}: 202`);
    t.ok(elapsed < 1_000, `${url}: answered promptly (${elapsed.toFixed(1)} ms)`);
    await app.accounts.settled();

    const lines = logged.lines().slice(linesBefore);
    const retries = lines.filter((line) => line.msg === 'mail delivery failed; will retry');
    const failures = lines.filter((line) => line.msg === 'mail not delivered');
    t.equal(retries.length, 2, `${url}: both retries logged (at warn)`);
    t.ok(
      retries.every((line) => line.level === WARN),
      'at warn',
    );
    t.equal(failures.length, 1, `${url}: then the failure, once`);
    t.match(failures[0], { level: ERROR, attempts: 3 }, `${url}: at error, after three attempts`);
    t.ok(typeof failures[0]?.code === 'string', `${url}: with the connection error code (${failures[0]?.code})`);
    t.same(await liveTokens(app, account.id), [], `${url}: no live action token left`);
  }
  t.same(await userRow(app, account.id), before, 'the user row is unchanged');
  t.equal((await loginRequest(app, account.email, account.password)).statusCode, 200, 'the password still works');
  const text = logged.text();
  t.notMatch(text, /hunter2/, 'the SMTP credentials are in no log line');
  t.notMatch(text, LINK_LIKE, 'no link in the log');
});

t.test('app.close() while a retry waits: no hang, the mail is given up and its token voided', async (t) => {
  const smtp: SmtpSink = await startSmtpSink(t);
  const logged = await buildLoggedApp(t, { SMTP_URL: smtp.url }, [60_000, 60_000]);
  const { app } = logged;
  const account = await register(app);
  await app.accounts.settled();

  smtp.refuseNext(100, 451);
  const attemptsBefore = smtp.attempts;
  t.equal((await requestReset(app, account.email)).statusCode, 202);
  // Until the first attempt was refused and the retry is waiting.
  const deadline = Date.now() + 5_000;
  while (!logged.lines().some((line) => line.msg === 'mail delivery failed; will retry')) {
    if (Date.now() > deadline) throw new Error('the first attempt was never refused');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const pending = await liveTokens(app, account.id);
  t.equal(pending.filter((row) => row.purpose === 'password_reset').length, 1, 'the token is live while it waits');

  const started = performance.now();
  await logged.close();
  const elapsed = performance.now() - started;
  t.ok(elapsed < 5_000, `app.close() returned in ${elapsed.toFixed(0)} ms, not after the 60 s retry`);
  t.equal(smtp.attempts - attemptsBefore, 1, 'no further attempt');
  t.match(
    logged.lines().find((line) => line.msg === 'mail not delivered'),
    { level: ERROR, mail: 'password_reset', attempts: 1 },
    'given up, and logged',
  );

  // The app's pool is closed: look with a client of our own.
  const client = new pg.Client({ connectionString: logged.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT id FROM action_tokens WHERE user_id = $1 AND purpose = $2', [
      account.id,
      'password_reset',
    ]);
    t.same(rows, [], 'the token of the mail given up is void');
  } finally {
    await client.end();
  }
});
