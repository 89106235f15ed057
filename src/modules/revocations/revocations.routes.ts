// The revocation feed: live deny-list entries for resource servers that poll instead of calling us per request.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NotFound, TokenInvalid, TokenMissing } from '../../errors.js';
import { safeEqual } from '../../lib/ids.js';
import { bearerToken } from '../../plugins/authenticate.js';
import { errorResponse, errorResponses, jsonResponse, ref } from '../common.schemas.js';
import { listRevocationsSince } from './revocations.repository.js';
import { FeedQuerySchema, type RevocationFeed, RevocationFeedSchema } from './revocations.schemas.js';

// Rows are shown only once this old, so a transaction that took a lower id but committed later is never skipped.
export const FEED_SETTLE_MS = 2_000;

const revocationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { revocationFeedToken } = app.config;

  app.get(
    '/auth/revocations',
    {
      // Before validation: a disabled feed is 404 whatever the query, and a caller without the secret learns nothing.
      onRequest: async (request) => {
        if (!revocationFeedToken) throw new NotFound('The revocation feed is not enabled');
        const presented = bearerToken(request);
        if (!presented) throw new TokenMissing();
        if (!safeEqual(presented, revocationFeedToken)) throw new TokenInvalid();
      },
      schema: {
        tags: ['keys'],
        operationId: 'listRevocations',
        summary: 'Live deny-list entries changed since a cursor (404 when no REVOCATION_FEED_TOKEN is configured)',
        security: [{ revocationFeedAuth: [] }],
        querystring: FeedQuerySchema,
        response: {
          200: jsonResponse('Entries changed since the cursor, oldest first', ref(RevocationFeedSchema)),
          ...errorResponses(400, 503),
          401: errorResponse(401, 'TOKEN_MISSING or TOKEN_INVALID: not the REVOCATION_FEED_TOKEN'),
          404: errorResponse(404, 'NOT_FOUND: the feed is not enabled'),
        },
      },
    },
    async (request, reply): Promise<RevocationFeed> => {
      const since = Number(request.query.since ?? 0);
      const now = app.clock.now();
      const rows = await listRevocationsSince(app.db, {
        sinceId: since,
        now: new Date(now),
        settledBefore: new Date(now - FEED_SETTLE_MS),
        limit: request.query.limit,
      });
      reply.header('cache-control', 'no-store');
      return {
        items: rows.map((row) => ({
          type: row.kind,
          value: row.value,
          ...(row.notBefore ? { notBefore: row.notBefore.toISOString() } : {}),
          ...(row.minVersion !== null ? { minVersion: row.minVersion } : {}),
          expiresAt: row.expiresAt.toISOString(),
        })),
        cursor: String(rows.at(-1)?.id ?? since),
      };
    },
  );
};

export default revocationRoutes;
