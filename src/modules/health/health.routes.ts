// Liveness and readiness: ready only while Postgres and Redis (or their embedded stand-ins) answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { jsonResponse, publicRoute, ref } from '../common.schemas.js';
import { LiveSchema, type Ready, ReadySchema } from './health.schemas.js';

const PROBE_TIMEOUT_MS = 1_500;

async function probe(check: () => Promise<void>): Promise<'ok' | 'down'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([check(), timeout]);
    return 'ok';
  } catch {
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Probes arrive every few seconds: `logLevel: 'warn'` keeps their request lines (info) out of the log, while
  // warnings ('not ready') and errors still appear.
  app.get(
    '/health/live',
    {
      logLevel: 'warn',
      schema: {
        tags: ['health'],
        operationId: 'live',
        summary: 'The process is up',
        security: publicRoute,
        response: { 200: jsonResponse('The process is up (whatever its dependencies)', ref(LiveSchema)) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      logLevel: 'warn',
      schema: {
        tags: ['health'],
        operationId: 'ready',
        summary: 'Postgres and Redis answer (503 names the one that does not)',
        security: publicRoute,
        response: {
          200: jsonResponse('Postgres and Redis answer', ref(ReadySchema)),
          503: jsonResponse('A dependency is down: `checks` names it', ref(ReadySchema)),
        },
      },
    },
    async (request, reply) => {
      const [postgres, redis] = await Promise.all([probe(app.database.ping), probe(() => app.store.ping())]);
      const body: Ready = {
        status: postgres === 'ok' && redis === 'ok' ? 'ok' : 'unavailable',
        checks: { postgres, redis },
      };
      if (body.status !== 'ok') request.log.warn({ checks: body.checks }, 'not ready');
      return reply
        .code(body.status === 'ok' ? 200 : 503)
        .header('cache-control', 'no-store')
        .send(body);
    },
  );
};

export default healthRoutes;
