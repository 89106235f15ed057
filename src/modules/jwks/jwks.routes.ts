// The JWKS: public members of every published signing key, for offline verification by resource servers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';

const JwkSchema = Type.Object({
  kty: Type.String(),
  kid: Type.String({ description: 'RFC 7638 thumbprint' }),
  use: Type.Literal('sig'),
  alg: Type.String(),
  n: Type.Optional(Type.String()),
  e: Type.Optional(Type.String()),
  crv: Type.Optional(Type.String()),
  x: Type.Optional(Type.String()),
  y: Type.Optional(Type.String()),
});

const jwksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Computed once: the key ring is fixed for the life of the instance.
  const jwks = app.keys.jwks();
  const cacheControl = `public, max-age=${app.config.jwksMaxAge}`;

  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['keys'],
        summary: 'Public keys that verify our access tokens',
        response: { 200: Type.Object({ keys: Type.Array(JwkSchema) }) },
      },
    },
    async (_request, reply) => reply.header('cache-control', cacheControl).send(jwks),
  );
};

export default jwksRoutes;
