// buildApp(config): every plugin and module, registered in reading order. Never listens.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  type RawServerDefault,
} from 'fastify';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config.js';
import { validatorCompiler } from './lib/validation.js';
import authModule from './modules/auth/index.js';
import healthModule from './modules/health/index.js';
import jwksModule from './modules/jwks/index.js';
import revocationsModule from './modules/revocations/index.js';
import sessionsModule from './modules/sessions/index.js';
import usersModule from './modules/users/index.js';
import accessTokensPlugin from './plugins/access-tokens.js';
import authenticatePlugin from './plugins/authenticate.js';
import authorizePlugin from './plugins/authorize.js';
import configPlugin from './plugins/config.js';
import cookiesPlugin from './plugins/cookies.js';
import dbPlugin from './plugins/db.js';
import denyListPlugin from './plugins/deny-list.js';
import docsPlugin from './plugins/docs.js';
import errorHandlerPlugin from './plugins/error-handler.js';
import keysPlugin from './plugins/keys.js';
import passwordsPlugin from './plugins/passwords.js';
import rateLimitPlugin from './plugins/rate-limit.js';
import secretsPlugin from './plugins/secrets.js';
import securityPlugin from './plugins/security.js';
import storePlugin from './plugins/store.js';

export interface BuildOptions {
  clock?: Clock;
  /** Overrides the logger built from config (tests pass `false`). */
  logger?: FastifyServerOptions['logger'];
}

export const BODY_LIMIT_BYTES = 16 * 1024;

export function loggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
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
      ],
      censor: '[redacted]',
    },
  };
}

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<App> {
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config),
    genReqId: () => randomUUID(),
    bodyLimit: BODY_LIMIT_BYTES,
    // A hop count is supported by Fastify (proxy-addr) though its types omit it.
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler());
  // JSON only: anything else is 415 rather than a string body.
  app.removeContentTypeParser(['text/plain']);
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
    await app.register(denyListPlugin);
    await app.register(keysPlugin);
    await app.register(secretsPlugin);
    await app.register(cookiesPlugin);
    await app.register(docsPlugin);
    await app.register(passwordsPlugin);
    await app.register(accessTokensPlugin);
    await app.register(authenticatePlugin);
    await app.register(authorizePlugin);
    await app.register(rateLimitPlugin);

    // Features: each module builds its service from the decorators above and registers its routes.
    await app.register(healthModule);
    await app.register(jwksModule);
    await app.register(revocationsModule);
    await app.register(sessionsModule);
    await app.register(authModule);
    await app.register(usersModule);

    await app.ready();
  } catch (error) {
    // A failed boot (a bad key, an unreachable database) must not leave a pool or a Redis connection open.
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}
