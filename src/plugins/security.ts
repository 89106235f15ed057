// HTTP hardening: helmet headers, the CORS allow-list, cookie parsing.
import type { ServerResponse } from 'node:http';
import cookie from '@fastify/cookie';
import cors from '@fastify/cors';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Helmet options of this route, merged over the service's (the browser app's pages have a CSP of their own). */
    helmet?: HelmetOptions;
  }
}

// An API: nothing may frame or embed it. The web module gives its pages their own CSP; Swagger UI sets its own.
const API_HELMET: HelmetOptions = {
  contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginResourcePolicy: { policy: 'same-origin' },
};

type HeaderList = readonly (readonly [name: string, value: string])[];

/**
 * The headers helmet sets for a configuration, found once by running its middleware against a recorder. They depend
 * on the options only (no nonces are used), so each request can be given the list instead of a new middleware, which
 * is what @fastify/helmet builds per request.
 */
export function helmetHeaders(options: HelmetOptions): HeaderList {
  const headers = new Map<string, string>();
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => headers.set(name, String(value)),
    removeHeader: (name: string) => headers.delete(name),
  };
  helmet(options)({} as never, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error;
  });
  return [...headers];
}

export default fp(
  async (app) => {
    const apiHeaders = helmetHeaders(API_HELMET);
    // By route config object: computed on a route's first request, after every onRoute hook has set its options.
    const byRoute = new WeakMap<object, HeaderList>();
    app.addHook('onRequest', (request, reply, done) => {
      const config = request.routeOptions.config;
      let headers = config.helmet ? byRoute.get(config) : apiHeaders;
      if (!headers) {
        headers = helmetHeaders(Object.assign({}, API_HELMET, config.helmet) as HelmetOptions);
        byRoute.set(config, headers);
      }
      for (const [name, value] of headers) reply.header(name, value);
      done();
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
