// A minimal resource server for the auth service: `buildServer(options)` for tests and embedding, and, run directly
// (`npx tsx examples/resource-server/server.ts`), a service configured from its environment.
import { pathToFileURL } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import authPlugin, { type AuthPluginOptions } from './auth-plugin.js';

export interface ServerOptions {
  auth: AuthPluginOptions;
  logger?: FastifyServerOptions['logger'];
}

export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? true });
  await app.register(authPlugin, options.auth);

  app.get('/health', async () => ({ status: 'ok' }));

  // Any valid token.
  app.get('/me', { preHandler: app.verifyAccessToken }, async (request) => {
    const auth = request.accessClaims;
    return { sub: auth?.sub, sid: auth?.sid, roles: auth?.roles };
  });

  // The `admin` role only.
  app.get('/admin/reports', { preHandler: app.requireRole('admin') }, async (request) => ({
    reports: [],
    requestedBy: request.accessClaims?.sub,
  }));

  // Sessions opened with a second factor only (amr holds `mfa`: TOTP, a recovery code or a passkey).
  app.get('/billing', { preHandler: app.requireMfa() }, async (request) => ({
    amr: request.accessClaims?.amr,
  }));

  await app.ready();
  return app;
}

/** The plugin's options from the environment; every problem reported at once. */
export function optionsFromEnv(env: NodeJS.ProcessEnv): AuthPluginOptions {
  const problems: string[] = [];
  const value = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const issuer = value('AUTH_ISSUER');
  if (!issuer) problems.push('AUTH_ISSUER: required (the auth service ISSUER, e.g. https://auth.example.com)');
  const base = (issuer ?? '').replace(/\/$/, '');
  const pollIntervalMs = Number(value('POLL_INTERVAL') ?? 5000);
  if (!Number.isSafeInteger(pollIntervalMs) || pollIntervalMs <= 0) {
    problems.push('POLL_INTERVAL: expected a positive whole number of milliseconds');
  }
  const feedToken = value('REVOCATION_FEED_TOKEN');
  const algorithms = (value('AUTH_ALGORITHMS') ?? 'RS256').split(',').map((alg) => alg.trim());
  if (problems.length > 0) throw new Error(`invalid configuration:\n${problems.join('\n')}`);
  return {
    issuer: issuer as string,
    audience: value('AUTH_AUDIENCE') ?? (issuer as string),
    jwksUrl: value('AUTH_JWKS_URL') ?? `${base}/.well-known/jwks.json`,
    algorithms,
    ...(feedToken
      ? {
          revocationFeed: {
            url: value('REVOCATION_FEED_URL') ?? `${base}/auth/revocations`,
            token: feedToken,
            pollIntervalMs,
          },
        }
      : {}),
  };
}

const runDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (runDirectly) {
  const app = await buildServer({ auth: optionsFromEnv(process.env) });
  await app.listen({ port: Number(process.env.PORT ?? 4000), host: process.env.HOST ?? '127.0.0.1' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}
