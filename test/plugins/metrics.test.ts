// Prometheus metrics: a scripted flow (register, logins, /users/me, refresh, reuse, logout, a rate limit, an expired
// token) counted exactly on the METRICS_PORT listener; /metrics never on the main port; no listener without the port;
// METRICS_* validated at boot.
import net from 'node:net';
import Fastify from 'fastify';
import t from 'tap';
import { systemClock } from '../../src/clock.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import configPlugin from '../../src/plugins/config.js';
import metricsPlugin from '../../src/plugins/metrics.js';
import { buildTestApp, type Teardown } from '../helpers/app.js';
import { TestClock } from '../helpers/clock.js';
import { freePort, request } from '../helpers/server-process.js';
import { bearer, codeOf, login, loginRequest, me, refresh, register, uniqueEmail } from '../helpers/session-flow.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped). */
function parseExposition(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries(
        [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [pair[1], pair[2]]),
      );
      return { name: match[1] as string, labels, value: Number(match[3]) };
    });
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when there is none. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter(
    (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

/** Listening TCP servers of this process (the app's metrics listener would be one). */
const listeningServers = () => process.getActiveResourcesInfo().filter((type) => type === 'TCPServerWrap').length;

t.test('a scripted flow is counted exactly on the metrics port, and only there', async (t) => {
  const metricsPort = await freePort();
  const clock = new TestClock();
  const { app, config } = await buildTestApp(t, {
    clock,
    env: {
      METRICS_PORT: String(metricsPort),
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_REGISTER_PER_IP: '1',
      // Every second presentation of a rotated token is a reuse.
      REFRESH_REUSE_INTERVAL: '0',
    },
  });

  const account = await register(app);
  const refused = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email: uniqueEmail(), password: account.password },
  });
  t.equal(codeOf(refused), 'RATE_LIMITED', 'a second registration from the address is limited');

  const first = await login(app, account);
  t.equal(codeOf(await loginRequest(app, account.email, 'not the password at all')), 'INVALID_CREDENTIALS');
  t.equal((await me(app, first.accessToken)).statusCode, 200, '/users/me with the first token');

  const rotated = await refresh(app, first.refreshToken);
  t.equal(rotated.statusCode, 200, 'the refresh token rotates');
  t.equal(codeOf(await refresh(app, first.refreshToken)), 'REFRESH_TOKEN_REUSED', 'the rotated one again: reuse');
  t.equal(codeOf(await me(app, first.accessToken)), 'TOKEN_REVOKED', 'the reuse revoked the session');

  const second = await login(app, account);
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(second.accessToken) });
  t.equal(logout.statusCode, 204, 'logout');
  t.equal(codeOf(await me(app, second.accessToken)), 'TOKEN_REVOKED', 'the logged-out token is refused');

  t.equal(codeOf(await app.inject({ method: 'GET', url: '/users/me' })), 'TOKEN_MISSING');
  t.equal(codeOf(await me(app, 'a.b.c')), 'TOKEN_INVALID');
  const third = await login(app, account);
  clock.advance((config.accessTokenTtl + config.clockTolerance + 1) * 1000);
  t.equal(codeOf(await me(app, third.accessToken)), 'TOKEN_EXPIRED');

  const onMainPort = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(onMainPort.statusCode, 404, '/metrics is not a route of the main port');
  await app.inject({ method: 'GET', url: '/users/00000000-0000-7000-8000-000000000000/nothing-here?x=1' });
  // The verification mail of the registration goes out after its response.
  await app.mail.idle();

  const scraped = await request(metricsPort, 'GET', '/metrics');
  t.equal(scraped.statusCode, 200, 'served on METRICS_PORT');
  const samples = parseExposition(scraped.body);
  const expected: [string, Record<string, string>, number][] = [
    ['auth_logins_total', { outcome: 'ok' }, 3],
    ['auth_logins_total', { outcome: 'INVALID_CREDENTIALS' }, 1],
    ['auth_refreshes_total', { outcome: 'ok' }, 1],
    ['auth_refreshes_total', { outcome: 'REFRESH_TOKEN_REUSED' }, 1],
    ['auth_refresh_token_reuses_total', {}, 1],
    ['auth_authentications_total', { outcome: 'ok' }, 1],
    ['auth_authentications_total', { outcome: 'TOKEN_REVOKED' }, 2],
    ['auth_authentications_total', { outcome: 'TOKEN_MISSING' }, 1],
    ['auth_authentications_total', { outcome: 'TOKEN_INVALID' }, 1],
    ['auth_authentications_total', { outcome: 'TOKEN_EXPIRED' }, 1],
    ['auth_deny_list_hits_total', { kind: 'session' }, 1],
    ['auth_deny_list_hits_total', { kind: 'token' }, 1],
    ['auth_rate_limit_hits_total', { limit: 'register' }, 1],
    ['auth_mails_total', { kind: 'verify_email', outcome: 'sent' }, 1],
    ['auth_mails_total', { kind: 'verify_email', outcome: 'failed' }, 0],
    // One hash (the registration) and four verifications (three logins and the wrong password), none waiting.
    ['auth_password_hash_wait_seconds_count', {}, 5],
    ['auth_password_hash_queue_depth', {}, 0],
    ['auth_password_hash_running', {}, 0],
    ['auth_store_connection', { kind: 'redis', status: 'ready' }, 1],
    ['auth_http_request_duration_seconds_count', { method: 'POST', route: '/auth/login', status_code: '200' }, 3],
    ['auth_http_request_duration_seconds_count', { method: 'POST', route: '/auth/login', status_code: '401' }, 1],
    ['auth_http_request_duration_seconds_count', { method: 'GET', route: '/users/me', status_code: '401' }, 5],
    // The probe for /metrics and the made-up URL: one series, not one per URL.
    ['auth_http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status_code: '404' }, 2],
  ];
  for (const [name, labels, value] of expected) {
    t.equal(sampleValue(samples, name, labels), value, `${name} ${JSON.stringify(labels)}`);
  }
  t.notOk(
    samples.some((sample) => sample.labels.route?.includes('nothing-here')),
    'no raw URL becomes a route label',
  );
  const poolSize = sampleValue(samples, 'auth_db_pool_connections');
  t.ok(poolSize !== undefined && poolSize >= 1, `the Postgres pool has connections (${poolSize})`);
  t.equal(sampleValue(samples, 'auth_db_pool_waiting_queries'), 0, 'no query waits for a connection');
  t.equal(sampleValue(samples, 'auth_db_pool_idle_connections'), poolSize, 'idle between requests');

  t.equal((await request(metricsPort, 'GET', '/users/me')).statusCode, 404, 'the metrics port serves nothing else');
  t.equal((await request(metricsPort, 'POST', '/metrics')).statusCode, 404, 'nor another method');

  await app.close();
  const closed = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: metricsPort });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
  t.ok(closed, 'the metrics listener closes with the app');
});

/** The metrics plugin alone on a bare Fastify (no database needed): what it listens on is all it decides. */
async function bareApp(t: Teardown, env: Record<string, string> = {}) {
  const bare = Fastify({ logger: false });
  t.teardown(() => bare.close());
  const config = loadConfig({ NODE_ENV: 'test', ...env });
  await bare.register(configPlugin, { config, clock: systemClock });
  await bare.register(metricsPlugin);
  bare.get('/probe', async () => ({ ok: true }));
  return bare;
}

t.test('without METRICS_PORT nothing listens, and no per-request hook runs', async (t) => {
  const before = listeningServers();
  const bare = await bareApp(t);
  await bare.ready();
  t.equal(listeningServers(), before, 'the plugin opened no listener');
  t.equal((await bare.inject({ method: 'GET', url: '/probe' })).statusCode, 200);
  const samples = parseExposition(await bare.metrics.registry.metrics());
  t.notOk(
    samples.some((sample) => sample.name.startsWith('auth_http_request_duration_seconds')),
    'no request-duration histogram',
  );
  t.equal(sampleValue(samples, 'auth_logins_total'), undefined, 'counters exist but are empty');
});

t.test('a METRICS_PORT already taken fails the boot', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => taken.close(resolve)));
  const { port } = taken.address() as net.AddressInfo;
  const bare = await bareApp(t, { METRICS_PORT: String(port) });
  await t.rejects(
    async () => {
      await bare.ready();
    },
    { code: 'EADDRINUSE' },
  );
});

t.test('METRICS_* are validated', async (t) => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error(`accepted ${JSON.stringify(env)}`);
  };
  t.same(problems({ METRICS_PORT: 'abc' }), ['METRICS_PORT="abc": expected a whole number 1..65535']);
  t.same(problems({ METRICS_PORT: '70000' }), ['METRICS_PORT="70000": expected a whole number 1..65535']);
  t.same(problems({ METRICS_PORT: '0' }), ['METRICS_PORT="0": expected a whole number 1..65535']);
  t.same(problems({ PORT: '9000', METRICS_PORT: '9000' }), ['METRICS_PORT="9000": must differ from PORT']);
  t.same(loadConfig({}).metrics, undefined, 'unset: off');
  t.same(loadConfig({ METRICS_PORT: '9464' }).metrics, { port: 9464, host: '127.0.0.1' }, 'loopback by default');
  t.same(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).metrics, { port: 9464, host: '0.0.0.0' });
});
