// GET /.well-known/openid-configuration: metadata (RFC 8414 / OpenID Connect Discovery 1.0 field names) naming only
// what this service really does. It is not an OAuth authorization server nor an OpenID provider: there is no
// authorization or token endpoint in the OAuth sense and no ID token, so no field claims one. Clients that only need
// the issuer and jwks_uri (jose, openid-client's discovery()) work; a strict OpenID provider validator will say,
// truthfully, that this is not one.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';

export const DiscoverySchema = Type.Object({
  issuer: Type.String({ description: 'The `iss` of every access token; equal to ISSUER' }),
  jwks_uri: Type.String({ description: 'The public keys that verify access tokens' }),
  response_types_supported: Type.Array(Type.String(), {
    description: 'Required by RFC 8414; empty: there is no OAuth authorization endpoint',
  }),
  access_token_signing_alg_values_supported: Type.Array(Type.String(), {
    description: 'Extension: the one JWS algorithm (JWT_ALG) access tokens (typ at+jwt, RFC 9068) are signed with',
  }),
  revocation_feed_endpoint: Type.Optional(
    Type.String({
      description:
        'Extension, present only when REVOCATION_FEED_TOKEN is set: GET ?since=<cursor> with that token as Bearer, ' +
        'live deny-list entries for resource servers (not the RFC 7009 revocation endpoint)',
    }),
  ),
  service_documentation: Type.String({ description: 'The OpenAPI document rendered by Swagger UI' }),
});
export type Discovery = Static<typeof DiscoverySchema>;

const discoveryRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { issuer, jwtAlgorithm, revocationFeedToken, jwksMaxAge } = app.config;
  // The service is reached at its issuer (a path in it is a prefix a proxy maps onto our root).
  const base = issuer.replace(/\/+$/, '');
  const document: Discovery = {
    issuer,
    jwks_uri: `${base}/.well-known/jwks.json`,
    response_types_supported: [],
    access_token_signing_alg_values_supported: [jwtAlgorithm],
    ...(revocationFeedToken ? { revocation_feed_endpoint: `${base}/auth/revocations` } : {}),
    service_documentation: `${base}/docs`,
  };
  const cacheControl = `public, max-age=${jwksMaxAge}`;

  app.get(
    '/.well-known/openid-configuration',
    {
      schema: {
        operationId: 'getDiscoveryDocument',
        tags: ['keys'],
        summary: 'Issuer metadata: jwks_uri, the signing algorithm, the revocation feed',
        response: { 200: DiscoverySchema },
      },
    },
    async (_request, reply) => reply.header('cache-control', cacheControl).send(document),
  );
};

export default discoveryRoutes;
