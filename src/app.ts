// buildApp(config): every plugin and module, registered in reading order. Never listens.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
  type RawServerDefault,
} from 'fastify';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config.js';
import { lazySerializerFactory } from './lib/lazy-serializers.js';
import { isOptionalBodySchema } from './lib/trim-body.js';
import { validatorCompiler } from './lib/validation.js';
import accountsModule from './modules/accounts/index.js';
import authModule from './modules/auth/index.js';
import discoveryModule from './modules/discovery/index.js';
import healthModule from './modules/health/index.js';
import jwksModule from './modules/jwks/index.js';
import mfaModule from './modules/mfa/index.js';
import passkeysModule from './modules/passkeys/index.js';
import revocationsModule from './modules/revocations/index.js';
import schemasModule from './modules/schemas.js';
import sessionsModule from './modules/sessions/index.js';
import usersModule from './modules/users/index.js';
import webModule from './modules/web/index.js';
import accessTokensPlugin from './plugins/access-tokens.js';
import authenticatePlugin from './plugins/authenticate.js';
import authorizePlugin from './plugins/authorize.js';
import configPlugin from './plugins/config.js';
import cookiesPlugin from './plugins/cookies.js';
import dbPlugin from './plugins/db.js';
import denyListPlugin from './plugins/deny-list.js';
import docsPlugin from './plugins/docs.js';
import errorHandlerPlugin, { clientErrorHandler, frameworkErrors, serializeError } from './plugins/error-handler.js';
import keysPlugin from './plugins/keys.js';
import mailPlugin from './plugins/mail.js';
import metricsPlugin from './plugins/metrics.js';
import passwordsPlugin from './plugins/passwords.js';
import rateLimitPlugin from './plugins/rate-limit.js';
import secretsPlugin from './plugins/secrets.js';
import securityPlugin from './plugins/security.js';
import storePlugin from './plugins/store.js';

export interface BuildOptions {
  clock?: Clock;
  /** Overrides the logger built from config (tests pass `false`). */
  logger?: FastifyServerOptions['logger'];
  /** Overrides the HTTP timeouts (milliseconds); see HTTP_TIMEOUTS. */
  http?: Partial<HttpTimeouts>;
  /** Overrides the waits between mail delivery attempts (milliseconds); see DEFAULT_RETRY_DELAYS_MS. */
  mailRetryDelaysMs?: readonly number[];
  /** Registers more routes before the app is ready: the benchmark's measurement-only route, never the server's. */
  extraRoutes?: (app: App) => void | Promise<void>;
}

export interface HttpTimeouts {
  /** Whole request (headers and body) must arrive within this, else 408. */
  requestTimeoutMs: number;
  /** Headers must arrive within this, else 408. At most requestTimeoutMs. */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way (e.g. a client that stopped reading its response) is destroyed. */
  connectionTimeoutMs: number;
  /** How often Node checks the request and headers timeouts: the granularity of both. */
  checkIntervalMs: number;
}

// Slow clients (a trickled body, headers that never end) must not hold a connection and its memory indefinitely.
// Bodies are at most 16 KiB, so 30 s is ample for any real client. Keep-alive stays at Fastify's 72 s, longer than
// common load balancers' 60 s idle timeout, so the balancer, not us, closes idle connections (no reset races).
// The idle-socket bound is longer than keep-alive so it never cuts a healthy idle keep-alive connection first.
export const HTTP_TIMEOUTS: HttpTimeouts = {
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 72_000,
  connectionTimeoutMs: 120_000,
  checkIntervalMs: 1_000,
};

export const BODY_LIMIT_BYTES = 16 * 1024;
const EMBEDDED_PLUGIN_TIMEOUT_MS = 120_000;

/**
 * The server's logger: JSON lines, or with `pretty` (the real server on a terminal, outside production) readable
 * lines through pino-pretty in a worker thread. Redaction and serializers apply to both.
 */
export function loggerOptions(config: Config, options: { pretty?: boolean } = {}): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...(options.pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: false },
          },
        }
      : {}),
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-csrf-token"]',
        'res.headers["set-cookie"]',
        '*.password',
        '*.currentPassword',
        '*.newPassword',
        '*.refreshToken',
        '*.accessToken',
        '*.token',
      ],
      censor: '[redacted]',
    },
    // Database errors are logged by SQL state only: their messages carry the query's parameters.
    serializers: { err: serializeError, req: serializeRequest },
  };
}

/**
 * Fastify's request serializer, with the links' action tokens cut out of the URL: the pages they open
 * (`/reset-password?token=...`) are requested like any other.
 */
function serializeRequest(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactTokenParameter(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

export function redactTokenParameter(url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]');
}

// pino's loggers have it; Fastify's type and its no-op logger (`logger: false`) do not.
const levelEnabled = (log: FastifyBaseLogger, level: string) =>
  (log as Partial<{ isLevelEnabled(level: string): boolean }>).isLevelEnabled?.(level) !== false;

/**
 * Logging is a measurable share of a cheap request's cost: one line per request at info, written when it completes
 * and carrying the request's method and URL, and the line on arrival at debug only. A route's own `logLevel` still
 * silences both (health probes).
 *
 * The completed line is written past pino's redaction, which was a fifth of GET /users/me's CPU with the batched read:
 * its fields are only what serializeRequest and Fastify's reply serializer produce (method, URL with action tokens cut
 * out, host, address, port; status), none of which a redaction path names. Every other line, the errored one
 * included (an error can carry anything), keeps the redaction.
 */
class OneLinePerRequest extends LogController {
  // Set by buildApp as soon as the app's logger exists, before any request can complete.
  #accessLog!: FastifyBaseLogger;

  /** The app's logger without redaction paths, for the completed line. */
  useAccessLogger(log: FastifyBaseLogger): void {
    this.#accessLog = log;
  }

  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error)
      reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else if (levelEnabled(reply.log, 'info')) {
      // The request logger's one binding, so the line reads as before.
      this.#accessLog.info(
        { reqId: request.id, req: request, res: reply, responseTime: reply.elapsedTime },
        'request completed',
      );
    }
  }
}

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<App> {
  const timeouts = { ...HTTP_TIMEOUTS, ...options.http };
  const logController = new OneLinePerRequest();
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config),
    genReqId: () => randomUUID(),
    bodyLimit: BODY_LIMIT_BYTES,
    // A hop count is supported by Fastify (proxy-addr) though its types omit it.
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    return503OnClosing: true,
    // A new embedded data folder waits for initdb in a process of its own (src/db/client.ts): seconds, half a minute
    // on a loaded machine, past the 10 s Fastify allows a plugin by default.
    ...(config.databaseUrl ? {} : { pluginTimeout: EMBEDDED_PLUGIN_TIMEOUT_MS }),
    forceCloseConnections: 'idle',
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    connectionTimeout: timeouts.connectionTimeoutMs,
    http: {
      headersTimeout: Math.min(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs),
      connectionsCheckingInterval: timeouts.checkIntervalMs,
      // A missing Host is refused by the error-handler plugin in the contract's shape, not by Node's empty 400.
      requireHostHeader: false,
    },
    // What the router and Node's HTTP parser answer on their own, in the contract's shape too.
    frameworkErrors,
    clientErrorHandler,
    logController,
    schemaController: { compilersFactory: { buildSerializer: lazySerializerFactory() } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  logController.useAccessLogger(app.log.child({}, { redact: { paths: [] } }));

  app.setValidatorCompiler(validatorCompiler());
  // JSON only: anything else is 415 rather than a string body.
  app.removeContentTypeParser(['text/plain']);
  // An empty JSON body is `{}` on the routes whose body is optional (logout, refresh), else Fastify's usual 400.
  const { onProtoPoisoning, onConstructorPoisoning } = app.initialConfig;
  const parseJson = app.getDefaultJsonParser(onProtoPoisoning ?? 'error', onConstructorPoisoning ?? 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '' && isOptionalBodySchema(request.routeOptions.schema?.body)) done(null, {});
    else parseJson(request, body as string, done);
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  try {
    // Infrastructure: one concern each, no feature knowledge.
    await app.register(configPlugin, { config, clock: options.clock ?? systemClock });
    await app.register(errorHandlerPlugin);
    await app.register(securityPlugin);
    await app.register(dbPlugin);
    await app.register(storePlugin);
    await app.register(metricsPlugin);
    await app.register(denyListPlugin);
    await app.register(keysPlugin);
    await app.register(secretsPlugin);
    await app.register(cookiesPlugin);
    await app.register(docsPlugin);
    await app.register(schemasModule);
    await app.register(passwordsPlugin);
    await app.register(accessTokensPlugin);
    await app.register(authenticatePlugin);
    await app.register(authorizePlugin);
    await app.register(rateLimitPlugin);
    await app.register(mailPlugin, { retryDelaysMs: options.mailRetryDelaysMs });

    // Features: each module builds its service from the decorators above and registers its routes.
    await app.register(healthModule);
    await app.register(jwksModule);
    await app.register(discoveryModule);
    await app.register(revocationsModule);
    await app.register(sessionsModule);
    await app.register(authModule);
    await app.register(accountsModule);
    await app.register(mfaModule);
    await app.register(passkeysModule);
    await app.register(usersModule);
    await app.register(webModule);
    if (options.extraRoutes) await app.register(async (scope) => options.extraRoutes?.(scope as App));

    await app.ready();
  } catch (error) {
    // A failed boot (a bad key, an unreachable database) must not leave a pool or a Redis connection open.
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}
