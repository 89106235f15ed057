// GET /.well-known/openid-configuration: metadata (RFC 8414 / OpenID Connect Discovery 1.0 field names) naming only
// what this service really does. It is not an OAuth authorization server nor an OpenID provider: there is no
// authorization or token endpoint in the OAuth sense and no ID token, so no field claims one. Clients that only need
// the issuer and jwks_uri (jose, openid-client's discovery()) work; a strict OpenID provider validator will say,
// truthfully, that this is not one.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { jsonResponse, publicRoute, ref } from '../common.schemas.js';
import { type Discovery, DiscoverySchema } from './discovery.schemas.js';

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
        security: publicRoute,
        response: {
          200: jsonResponse('What this issuer publishes, in RFC 8414 field names', ref(DiscoverySchema), {
            'Cache-Control': Type.String({ description: 'public, max-age=<seconds>' }),
          }),
        },
      },
    },
    async (_request, reply) => reply.header('cache-control', cacheControl).send(document),
  );
};

export default discoveryRoutes;
