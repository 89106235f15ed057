// HTTP hardening: helmet headers, the CORS allow-list, cookie parsing.
import cookie from '@fastify/cookie';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import fp from 'fastify-plugin';

export default fp(
  async (app) => {
    await app.register(helmet, {
      // An API: nothing may frame or embed it. The docs plugin relaxes this for Swagger UI only.
      contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
      crossOriginResourcePolicy: { policy: 'same-origin' },
    });
    const { corsOrigins } = app.config;
    // Exact origins only; with none listed, no CORS headers at all. Credentials only ever go to a listed origin.
    await app.register(cors, {
      origin: corsOrigins.length > 0 ? corsOrigins : false,
      credentials: corsOrigins.length > 0,
      methods: ['GET', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'X-CSRF-Token'],
      maxAge: 600,
    });
    await app.register(cookie);
  },
  { name: 'security', dependencies: ['config'] },
);
