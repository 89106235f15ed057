// Schema of the discovery document.
import { type Static, Type } from '@sinclair/typebox';

export const DiscoverySchema = Type.Object(
  {
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
  },
  { $id: 'DiscoveryDocument', description: 'RFC 8414 metadata naming only what this service does' },
);
export type Discovery = Static<typeof DiscoverySchema>;
