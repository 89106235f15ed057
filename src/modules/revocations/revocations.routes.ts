// The revocation feed: live deny-list entries for resource servers that poll instead of calling us per request.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import { NotFound, TokenInvalid, TokenMissing } from '../../errors.js';
import { safeEqual } from '../../lib/ids.js';
import { bearerToken } from '../../plugins/authenticate.js';
import { errorResponses } from '../common.schemas.js';
import { listRevocationsSince } from './revocations.repository.js';

// Rows are shown only once this old, so a transaction that took a lower id but committed later is never skipped.
export const FEED_SETTLE_MS = 2_000;

const FeedQuerySchema = Type.Object(
  {
    since: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'The cursor of the previous response' })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 1000 }),
  },
  { additionalProperties: false },
);

const FeedSchema = Type.Object({
  items: Type.Array(
    Type.Object({
      type: Type.Union([Type.Literal('jti'), Type.Literal('sid'), Type.Literal('sub')]),
      value: Type.String(),
      notBefore: Type.Optional(
        Type.String({ format: 'date-time', description: 'For `sub`: the time of the change that revoked the tokens' }),
      ),
      minVersion: Type.Optional(
        Type.Integer({
          minimum: 0,
          description: 'For `sub`: access tokens whose `ver` claim is below this are revoked',
        }),
      ),
      expiresAt: Type.String({ format: 'date-time', description: 'After this, the entry no longer matters' }),
    }),
  ),
  cursor: Type.String({ description: 'Pass as `since` on the next poll; a page shorter than `limit` is the last' }),
});
type Feed = Static<typeof FeedSchema>;

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
        summary: 'Live deny-list entries changed since a cursor (404 when no REVOCATION_FEED_TOKEN is configured)',
        security: [{ revocationFeedAuth: [] }],
        querystring: FeedQuerySchema,
        response: { 200: FeedSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply): Promise<Feed> => {
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
