// OpenAPI 3 document of every route (built from the route schemas) and Swagger UI at /docs.
import { createHash } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { isOptionalBodySchema } from '../lib/trim-body.js';

// Marks, in `transform`, the operations whose body may be omitted; `transformObject` turns it into
// `requestBody.required: false` (@fastify/swagger always writes `true`).
const OPTIONAL_BODY = 'x-optional-body';

type Operation = { [OPTIONAL_BODY]?: boolean; requestBody?: { required?: boolean } };

// Swagger UI loads only its own files from /docs/static, from no other origin, and runs no inline script. Its React
// components set style attributes, hence 'unsafe-inline' for attributes only; its one inline style element (the
// logo's SVG) is allowed by hash. No upgrade-insecure-requests: it would break the page on a plain-HTTP development
// server. test/openapi/docs-ui.test.ts loads the page in Chromium and fails on any violation.
const logoStyle = '.logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}';
const logoStyleHash = `'sha256-${createHash('sha256').update(logoStyle).digest('base64')}'`;
const docsCsp = [
  "default-src 'none'",
  "base-uri 'none'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  `style-src 'self' ${logoStyleHash}`,
  "style-src-attr 'unsafe-inline'",
].join('; ');

export default fp(
  async (app) => {
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
        // Relative: the document works wherever it is served (behind a proxy, on any port).
        servers: [{ url: '/' }],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
            cookieAuth: { type: 'apiKey', in: 'cookie', name: app.cookiePolicy.names.access },
            revocationFeedAuth: { type: 'http', scheme: 'bearer', description: 'REVOCATION_FEED_TOKEN' },
          },
        },
      },
      // Schemas registered with an `$id` (the schemas plugin) become #/components/schemas/<$id>.
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
      transform: ({ schema, url }) => {
        if (!schema || !isOptionalBodySchema(schema.body)) return { schema, url };
        return { schema: { ...schema, [OPTIONAL_BODY]: true }, url };
      },
      transformObject: (documentObject) => {
        if (!('openapiObject' in documentObject)) return documentObject.swaggerObject;
        const document = documentObject.openapiObject as { paths?: Record<string, Record<string, Operation>> };
        for (const methods of Object.values(document.paths ?? {})) {
          for (const operation of Object.values(methods)) {
            if (!operation[OPTIONAL_BODY]) continue;
            delete operation[OPTIONAL_BODY];
            if (operation.requestBody) operation.requestBody.required = false;
          }
        }
        return document;
      },
    });
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: docsCsp,
      // No badge fetched from validator.swagger.io.
      uiConfig: { validatorUrl: null },
    });
  },
  { name: 'docs', dependencies: ['config', 'cookies'] },
);
