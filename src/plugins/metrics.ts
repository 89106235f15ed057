// Decorates `metrics`: this app's own prom-client registry and its instruments, and, when METRICS_PORT is set, a
// second listener serving GET /metrics in the Prometheus text format (never on the public port).
import { createServer, type Server } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PoolState } from '../db/client.js';
import { DependencyUnavailable, isErrorCode } from '../errors.js';

export interface Metrics {
  readonly registry: Registry;
  /** `authenticate`'s verdicts: `ok`, or the error code it answered (TOKEN_EXPIRED, TOKEN_REVOKED, ...). */
  readonly authentications: Counter<'outcome'>;
  /** POST /auth/login answers: `ok`, or the error code answered. */
  readonly logins: Counter<'outcome'>;
  /** POST /auth/refresh answers: `ok`, or the error code answered. */
  readonly refreshes: Counter<'outcome'>;
  /** Rotated refresh tokens presented again outside the grace interval (their session is revoked). */
  readonly refreshTokenReuses: Counter;
  /** Access tokens refused by the deny-list, by what was revoked: the `token`, its `session`, or the `user`'s. */
  readonly denyListHits: Counter<'kind'>;
  /** Requests refused by a limit, by the limit's name (per-IP budgets and the failed-login throttle). */
  readonly rateLimitHits: Counter<'limit'>;
  /** How long each password hash or verification waited for a slot of the argon2 queue. */
  readonly passwordHashWait: Histogram;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

/** The label of requests no route matched: one series for every URL probed, whatever it was. */
export const UNMATCHED_ROUTE = 'unmatched';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
// argon2 runs take tens of milliseconds; waits beyond a few seconds mean the queue is saturated.
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Route hooks counting each answer of the route in `counter`: `ok` below 400, else the code of the contract's error
 * body, so the label is exactly what the error handler answered (a 503 from the argon2 queue, a 429, a 400).
 */
export function countOutcomes(counter: Counter<'outcome'>) {
  return {
    onSend: async (_request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      counter.inc({ outcome: reply.statusCode < 400 ? 'ok' : errorCodeIn(payload) });
    },
  };
}

function errorCodeIn(payload: unknown): string {
  const match = typeof payload === 'string' ? /"code":"([A-Z_]+)"/.exec(payload) : null;
  return match?.[1] ?? 'unknown';
}

/** The catalogue's code of an error, as the error handler would answer it; anything else is INTERNAL_ERROR. */
export function errorOutcome(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (isErrorCode(code)) return code;
  return error instanceof DependencyUnavailable ? 'SERVICE_UNAVAILABLE' : 'INTERNAL_ERROR';
}

export default fp(
  async (app) => {
    const registry = new Registry();
    const prefix = 'auth_';
    const metrics: Metrics = {
      registry,
      authentications: new Counter({
        name: `${prefix}authentications_total`,
        help: 'Access-token authentications, by outcome (ok or the error code)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      logins: new Counter({
        name: `${prefix}logins_total`,
        help: 'Password logins (POST /auth/login), by outcome (ok or the error code)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      refreshes: new Counter({
        name: `${prefix}refreshes_total`,
        help: 'Refresh-token rotations (POST /auth/refresh), by outcome (ok or the error code)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      refreshTokenReuses: new Counter({
        name: `${prefix}refresh_token_reuses_total`,
        help: 'Rotated refresh tokens presented again: each revoked its session',
        registers: [registry],
      }),
      denyListHits: new Counter({
        name: `${prefix}deny_list_hits_total`,
        help: 'Access tokens refused by the deny-list, by what was revoked (token, session, user)',
        labelNames: ['kind'],
        registers: [registry],
      }),
      rateLimitHits: new Counter({
        name: `${prefix}rate_limit_hits_total`,
        help: 'Requests refused by a rate limit, by limit name',
        labelNames: ['limit'],
        registers: [registry],
      }),
      passwordHashWait: new Histogram({
        name: `${prefix}password_hash_wait_seconds`,
        help: 'Time each argon2 hash or verification waited for a slot',
        buckets: WAIT_BUCKETS,
        registers: [registry],
      }),
    };

    // Gauges (and the mail counter) read their source when scraped: nothing runs between scrapes. Each source is a
    // decorator of another plugin, looked up then: a bare app of a plugin test may lack it, and reports nothing.
    const source = <K extends 'passwords' | 'mail' | 'database' | 'store'>(name: K): FastifyInstance[K] | undefined =>
      app.hasDecorator(name) ? app[name] : undefined;
    new Gauge({
      name: `${prefix}password_hash_queue_depth`,
      help: 'argon2 hashes and verifications waiting for a slot',
      registers: [registry],
      collect() {
        this.set(source('passwords')?.load.waiting ?? 0);
      },
    });
    new Gauge({
      name: `${prefix}password_hash_running`,
      help: 'argon2 hashes and verifications running',
      registers: [registry],
      collect() {
        this.set(source('passwords')?.load.running ?? 0);
      },
    });
    new Counter({
      name: `${prefix}mails_total`,
      help: 'Mails handed to the transport, by kind and outcome (sent, or failed: given up after its retries)',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
      collect() {
        // The mail queue keeps the counts (it has no registry); a counter set from a monotonic source stays one.
        this.reset();
        for (const { kind, sent, failed } of source('mail')?.deliveries() ?? []) {
          this.inc({ kind, outcome: 'sent' }, sent);
          this.inc({ kind, outcome: 'failed' }, failed);
        }
      },
    });
    // Postgres only: PGlite is one in-process connection with no pool to report, so these have no samples there.
    const poolGauge = (name: string, help: string, read: (state: PoolState) => number) =>
      new Gauge({
        name: `${prefix}db_pool_${name}`,
        help,
        registers: [registry],
        collect() {
          const state = source('database')?.pool?.();
          if (state) this.set(read(state));
          else this.remove({});
        },
      });
    poolGauge('connections', 'Postgres connections open in the pool (idle or in use)', (state) => state.total);
    poolGauge('idle_connections', 'Postgres connections open and idle', (state) => state.idle);
    poolGauge('waiting_queries', 'Queries waiting for a connection of the pool', (state) => state.waiting);
    new Gauge({
      name: `${prefix}store_connection`,
      help: 'The store (redis or embedded) and its connection status: 1 on the current status',
      labelNames: ['kind', 'status'],
      registers: [registry],
      collect() {
        this.reset();
        const store = source('store');
        if (store) this.set({ kind: store.kind, status: store.connectionStatus() }, 1);
      },
    });

    app.decorate('metrics', metrics);

    const listen = app.config.metrics;
    // Without a listener nobody reads durations: the per-request hook is left out, so it costs the hot path nothing.
    if (!listen) return;

    const requestDuration = new Histogram({
      name: `${prefix}http_request_duration_seconds`,
      help: 'Time to answer each request, by method, route pattern and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    app.addHook('onResponse', async (request, reply) => {
      // The route's pattern, never the raw URL: one series per route however many ids and queries pass through.
      const route = request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE);
      requestDuration.observe(
        { method: request.method, route, status_code: reply.statusCode },
        reply.elapsedTime / 1000,
      );
    });

    const server: Server = createServer((request, response) => {
      const path = request.url?.split('?')[0];
      if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n');
        return;
      }
      registry.metrics().then(
        (body) => {
          response.writeHead(200, { 'content-type': registry.contentType });
          response.end(request.method === 'HEAD' ? undefined : body);
        },
        (error: unknown) => {
          app.log.error({ err: error }, 'metrics collection failed');
          response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
        },
      );
    });
    // Scrapers come every 15-60 s: a connection idle longer is not kept. onClose cuts any still open.
    server.keepAliveTimeout = 5_000;
    app.addHook('onReady', async () => {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listen.port, listen.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      app.log.info({ host: listen.host, port: listen.port }, 'metrics served at /metrics');
    });
    app.addHook('onClose', async () => {
      if (!server.listening) return;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    });
  },
  { name: 'metrics', dependencies: ['config'] },
);
