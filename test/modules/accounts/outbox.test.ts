// The development outbox (contract: Accounts, v1.1): without SMTP_URL, on embedded defaults (no DATABASE_URL, no
// REDIS_URL), the real server writes each message to DATA_DIR/outbox as an .eml file, logs its link at warn, says so
// loudly at boot, and the link in the file resets the password end to end.
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { request, startServerProcess } from '../../helpers/server-process.js';
import { STRONG_PASSWORD, uniqueEmail } from '../../helpers/session-flow.js';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

const WARN = 40;

function logLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

async function waitFor<T>(probe: () => Promise<T | undefined>, label: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('embedded defaults, no SMTP_URL: mail goes to the outbox, and its link resets the password', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'auth-outbox-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dataDir = path.join(root, 'data');
  const outbox = path.join(dataDir, 'outbox');
  // Exactly these variables (plus PATH, HOME, PORT, HOST, LOG_LEVEL=info): no DATABASE_URL, REDIS_URL or SMTP_URL.
  const server = await startServerProcess(t, {
    NODE_ENV: 'development',
    DATA_DIR: dataDir,
    KEYS_DIR: path.join(root, 'keys'),
  });
  const { port } = server;

  const boot = logLines(server.output());
  const loud = boot.find((line) => /NO SMTP_URL/.test(line.msg));
  t.ok(loud, 'the boot log says mail goes to the outbox');
  t.equal(loud?.level, WARN, 'at warn');
  t.match(loud?.msg, /OUTBOX/, 'loudly');
  t.equal(path.resolve(String(loud?.outbox)), outbox, 'naming the outbox folder');

  const email = uniqueEmail('outbox');
  const registered = await request(port, 'POST', '/auth/register', { email, password: STRONG_PASSWORD });
  t.equal(registered.statusCode, 201, `register: 201 ${registered.statusCode === 201 ? '' : registered.body}`);
  const asked = await request(port, 'POST', '/auth/password-reset/request', { email });
  t.equal(asked.statusCode, 202, 'reset request: 202');
  t.equal(asked.body, '{}', 'body {}');

  const emlFiles = async () => (await readdir(outbox).catch(() => [] as string[])).filter((f) => f.endsWith('.eml'));
  const resetFile = await waitFor(
    async () => (await emlFiles()).find((file) => file.includes('password_reset')),
    'the reset message in the outbox',
  );
  t.ok(
    (await emlFiles()).some((file) => file.includes('verify_email')),
    'the registration verification message is there too',
  );
  const filePath = path.join(outbox, resetFile);
  t.equal((await stat(filePath)).mode & 0o777, 0o600, 'the .eml file is readable by its owner only');

  const parsed = await simpleParser(await readFile(filePath));
  const links = (parsed.text ?? '').match(/https?:\/\/[^\s<>"]+/g) ?? [];
  t.equal(links.length, 1, 'its text part holds exactly one link');
  const link = links[0] as string;
  t.match(link, new RegExp(`^http://localhost:${port}/reset-password\\?token=[A-Za-z0-9_-]{43,}$`), 'to the issuer');
  const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to;
  t.equal(to?.value[0]?.address, email, 'addressed to the user');
  t.equal(parsed.from?.value[0]?.address, 'no-reply@localhost', "from MAIL_FROM's default");

  const logged = await waitFor(
    async () =>
      logLines(server.output()).find((line) => line.msg.includes('outbox') && String(line.file ?? '') === filePath),
    'the outbox log line',
  );
  t.equal(logged.level, WARN, 'the message is logged at warn');
  t.equal(logged.link, link, 'with its link');
  t.equal(logged.mail, 'password_reset', 'naming the kind of message');

  // Follow the link: the page, then the call it makes.
  const linkUrl = new URL(link);
  const page = await request(port, 'GET', `${linkUrl.pathname}${linkUrl.search}`);
  t.equal(page.statusCode, 200, 'the reset page is served');
  const token = linkUrl.searchParams.get('token') as string;
  const newPassword = 'an outbox-delivered passphrase';
  const reset = await request(port, 'POST', '/auth/password-reset', { token, newPassword });
  t.equal(reset.statusCode, 204, 'reset with the link: 204');
  const fresh = await request(port, 'POST', '/auth/login', { email, password: newPassword });
  t.equal(fresh.statusCode, 200, 'the new password logs in');
  t.equal(JSON.parse(fresh.body).user.emailVerified, true, 'and the address counts as verified');
  const old = await request(port, 'POST', '/auth/login', { email, password: STRONG_PASSWORD });
  t.equal(old.statusCode, 401, 'the old one does not');
  const again = await request(port, 'POST', '/auth/password-reset', { token, newPassword: 'yet another passphrase' });
  t.equal(again.statusCode, 400, 'the link works once');
  t.equal(JSON.parse(again.body).code, 'ACTION_TOKEN_INVALID', 'ACTION_TOKEN_INVALID');

  const { code, signal } = await server.stop('SIGTERM');
  t.ok(code === 0 || signal === 'SIGTERM', `the server stops cleanly (code ${code}, signal ${signal})`);
});
