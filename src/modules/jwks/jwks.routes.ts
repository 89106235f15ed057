// The JWKS: public members of every published signing key, for offline verification by resource servers.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { KeyRing } from '../../keys/key-ring.js';
import { jsonResponse, noContent, publicRoute, ref } from '../common.schemas.js';
import { JwkSetSchema } from './jwks.schemas.js';

/** The served document of one ring: its bytes and their strong ETag. */
interface JwksDocument {
  ring: KeyRing;
  body: string;
  etag: string;
}

/**
 * Whether an If-None-Match header names `etag` (RFC 9110 13.1.2: weak comparison, so a `W/` prefix matches too;
 * `*` matches any current representation).
 */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

const jwksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const cacheControl = `public, max-age=${app.config.jwksMaxAge}`;
  // Serialized (by the route's response schema, so only listed members) and hashed once per ring: the ring only
  // changes when the keys plugin reloads KEYS_DIR.
  let served: JwksDocument | undefined;

  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['keys'],
        operationId: 'getJwks',
        summary: 'Public keys that verify our access tokens',
        description:
          'Carries a strong ETag (a hash of the body): a request whose If-None-Match names it gets 304 with no body. ' +
          'The ETag changes whenever a key is added or retired.',
        security: publicRoute,
        headers: Type.Object({
          'if-none-match': Type.Optional(Type.String({ description: 'An ETag of an earlier response' })),
        }),
        response: {
          200: jsonResponse('The JWK Set of every published signing key', ref(JwkSetSchema), {
            'Cache-Control': Type.String({ description: 'public, max-age=<seconds>' }),
            ETag: Type.String({ description: 'Strong validator: a hash of the body' }),
          }),
          304: noContent('The JWK Set named by If-None-Match is still the current one', {
            'Cache-Control': Type.String({ description: 'public, max-age=<seconds>' }),
            ETag: Type.String({ description: 'Strong validator: a hash of the body' }),
          }),
        },
      },
    },
    async (request, reply) => {
      const ring = app.keys.current;
      let document = served;
      if (document?.ring !== ring) {
        const serialize = reply.getSerializationFunction('200', 'application/json');
        if (!serialize) throw new Error('the JWKS route has no 200 serializer');
        const body = serialize(ring.jwks());
        document = { ring, body, etag: `"${createHash('sha256').update(body).digest('base64url')}"` };
        served = document;
      }
      reply.header('cache-control', cacheControl).header('etag', document.etag);
      if (matchesIfNoneMatch(request.headers['if-none-match'], document.etag))
        return reply.code(304).send(undefined as never);
      // Already serialized by this route's 200 schema (above), and a string is sent as it is: the hashed bytes.
      return reply.type('application/json; charset=utf-8').send(document.body as never);
    },
  );
};

export default jwksRoutes;
