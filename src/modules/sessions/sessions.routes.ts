// The caller's sessions: list, revoke one, revoke all.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { requestContext } from '../../lib/request-context.js';
import { principalOf } from '../../plugins/authenticate.js';
import { bearerOrCookie, errorResponses, IdParamsSchema, PageQuerySchema } from '../common.schemas.js';
import { SessionListSchema } from './sessions.schemas.js';

const sessionsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { sessions, cookiePolicy } = app;
  app.addHook('onRequest', app.authenticate);

  app.post(
    '/auth/logout-all',
    {
      schema: {
        tags: ['sessions'],
        summary: "Revoke every session of the caller; all the caller's access tokens are rejected at once",
        security: bearerOrCookie,
        // No body is read, but a malformed or oversized one is still refused before the handler.
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      await sessions.logoutAll(principalOf(request), requestContext(request));
      cookiePolicy.clearSession(reply);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/auth/sessions',
    {
      schema: {
        tags: ['sessions'],
        summary: "The caller's live sessions, newest first",
        security: bearerOrCookie,
        querystring: PageQuerySchema,
        response: { 200: SessionListSchema, ...errorResponses(400, 401, 503) },
      },
    },
    async (request) => sessions.list(principalOf(request), request.query),
  );

  app.delete(
    '/auth/sessions/:id',
    {
      schema: {
        tags: ['sessions'],
        summary: "Revoke one of the caller's sessions (404 for anyone else's)",
        security: bearerOrCookie,
        params: IdParamsSchema,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      await sessions.revoke(principalOf(request), request.params.id, requestContext(request));
      return reply.code(204).send(null);
    },
  );
};

export default sessionsRoutes;
