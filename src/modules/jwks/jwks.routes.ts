// The JWKS: public members of every published signing key, for offline verification by resource servers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { jsonResponse, publicRoute, ref } from '../common.schemas.js';
import { JwkSetSchema } from './jwks.schemas.js';

const jwksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Computed once: the key ring is fixed for the life of the instance.
  const jwks = app.keys.jwks();
  const cacheControl = `public, max-age=${app.config.jwksMaxAge}`;

  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['keys'],
        operationId: 'getJwks',
        summary: 'Public keys that verify our access tokens',
        security: publicRoute,
        response: {
          200: jsonResponse('The JWK Set of every published signing key', ref(JwkSetSchema), {
            'Cache-Control': Type.String({ description: 'public, max-age=<seconds>' }),
          }),
        },
      },
    },
    async (_request, reply) => reply.header('cache-control', cacheControl).send(jwks),
  );
};

export default jwksRoutes;
