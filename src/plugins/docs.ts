// OpenAPI 3 document of every route (built from the route schemas) and Swagger UI at /docs.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';

export default fp(
  async (app) => {
    const { issuer } = app.config;
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Auth service',
          version: '1.0.0',
          description:
            'Registration, login, sessions and RS256 access tokens. Resource servers verify access tokens offline ' +
            'against /.well-known/jwks.json. Every error has the shape {statusCode, code, error, message}.',
        },
        servers: [{ url: issuer }],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
            cookieAuth: { type: 'apiKey', in: 'cookie', name: app.cookiePolicy.names.access },
            revocationFeedAuth: { type: 'http', scheme: 'bearer', description: 'REVOCATION_FEED_TOKEN' },
          },
        },
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  },
  { name: 'docs', dependencies: ['config', 'cookies'] },
);
