// Graceful shutdown, beyond test/server.test.ts (which covers: SIGTERM exits 0, an in-flight request completes):
// the mail a 201 queued is delivered before the exit (here to the outbox), and SHUTDOWN_TIMEOUT bounds a request
// that would outlast it (the process exits 1 instead of holding a deploy); the mail queue refuses mail once closing.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { MailQueue } from '../../src/mail/mail-queue.js';
import type { MailTransport } from '../../src/mail/transport.js';
import { makeKeysDir, processBackends } from '../helpers/app.js';
import { request, type ServerProcess, startServerProcess } from '../helpers/server-process.js';

const { servers, database, redisKeyPrefix } = await processBackends(t, 'shutdown');
const keysDir = await makeKeysDir(t);
const PASSWORD = 'correct horse battery staple';

async function start(t: Test, env: Record<string, string>): Promise<{ server: ServerProcess; dataDir: string }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-shutdown-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const server = await startServerProcess(t, {
    NODE_ENV: 'test',
    // The request line is logged at debug: the signal goes once the request has reached the server.
    LOG_LEVEL: 'debug',
    DATABASE_URL: database.url,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: redisKeyPrefix,
    KEYS_DIR: keysDir,
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
    DATA_DIR: dataDir,
    ...env,
  });
  return { server, dataDir };
}

async function reached(server: ServerProcess, urlPath: string): Promise<boolean> {
  const deadline = Date.now() + 15_000;
  const line = new RegExp(`incoming request[^\\n]*${urlPath.replaceAll('/', '\\/')}|${urlPath}[^\\n]*incoming request`);
  while (!line.test(server.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return line.test(server.output());
}

t.test('SIGTERM mid-registration: 201, its verification mail delivered, exit 0', async (t) => {
  // Time cost 40: about a second of hashing, long enough to signal mid-request.
  const { server, dataDir } = await start(t, { ARGON2_TIME_COST: '40', EMAIL_VERIFICATION: 'optional' });
  const email = `shutdown-${randomBytes(5).toString('hex')}@example.com`;
  const inFlight = request(server.port, 'POST', '/auth/register', { email, password: PASSWORD });
  t.ok(await reached(server, '/auth/register'), 'the request reached the server');
  const signalled = Date.now();
  await server.stop('SIGTERM');
  const { code } = await server.exited;
  t.equal(code, 0, `exit 0 (${Date.now() - signalled} ms after the signal)`);
  t.equal((await inFlight).statusCode, 201, 'the in-flight registration got its 201');
  const outbox = path.join(dataDir, 'outbox');
  const files = (await readdir(outbox).catch(() => [] as string[])).filter((name) => name.endsWith('.eml'));
  const mails = await Promise.all(files.map((name) => readFile(path.join(outbox, name), 'utf8')));
  t.equal(mails.filter((mail) => mail.includes(email)).length, 1, 'its verification mail was written before the exit');
});

t.test('SHUTDOWN_TIMEOUT bounds a request that would outlast it: exit 1 at the bound', async (t) => {
  const { server } = await start(t, { SHUTDOWN_TIMEOUT: '1' });
  // A request whose body never ends stays in flight however long the shutdown waits.
  const stuck = http.request({
    host: '127.0.0.1',
    port: server.port,
    method: 'POST',
    path: '/auth/login',
    headers: { 'content-type': 'application/json', 'content-length': '1000' },
  });
  const cut = new Promise<string>((resolve) => {
    stuck.on('error', (error) => resolve(error.message));
    stuck.on('response', (response) => resolve(`answered ${response.statusCode}`));
  });
  stuck.write('{"email":');
  t.ok(await reached(server, '/auth/login'), 'the request reached the server');
  const signalled = Date.now();
  await server.stop('SIGTERM');
  const { code } = await server.exited;
  const took = Date.now() - signalled;
  t.equal(code, 1, 'exit 1: the bound was hit');
  t.ok(took < 5_000, `exited ${took} ms after the signal (bound 1 s)`);
  t.match(await cut, /socket hang up|ECONNRESET/, 'the unfinished request was cut, not answered');
});

t.test('the mail queue takes no new mail once closing began, and voids its token', async (t) => {
  const sent: string[] = [];
  const transport: MailTransport = {
    kind: 'outbox',
    send: async (mail) => {
      sent.push(mail.to);
    },
    close: () => undefined,
  };
  const queue = new MailQueue(transport, pino({ level: 'silent' }), []);
  queue.send({ kind: 'verify_email', to: 'before@example.com', subject: 's', text: 't', html: 'h' });
  const closed = queue.close();
  let voided = false;
  queue.send(
    { kind: 'verify_email', to: 'after@example.com', subject: 's', text: 't', html: 'h' },
    {
      onUndelivered: async () => {
        voided = true;
      },
    },
  );
  await closed;
  t.strictSame(sent, ['before@example.com'], 'the mail accepted before closing was delivered, the later one not');
  t.ok(voided, "the refused mail's token was voided");
});
