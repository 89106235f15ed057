// The caller's sessions: list, revoke one, revoke all.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requestContext } from '../../lib/request-context.js';
import { principalOf } from '../../plugins/authenticate.js';
import {
  bearerOrCookie,
  CsrfHeadersSchema,
  errorResponse,
  errorResponses,
  IdParamsSchema,
  jsonResponse,
  noContent,
  PageQuerySchema,
  ref,
  setCookieHeader,
} from '../common.schemas.js';
import { SessionListSchema } from './sessions.schemas.js';

const sessionsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { sessions, cookiePolicy } = app;
  app.addHook('onRequest', app.authenticate);

  app.post(
    '/auth/logout-all',
    {
      schema: {
        tags: ['sessions'],
        operationId: 'logoutAll',
        summary: "Revoke every session of the caller; all the caller's access tokens are rejected at once",
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        // No body is read, but a malformed or oversized one is still refused before the handler.
        response: {
          204: noContent('Every session of the caller is revoked; the session cookies are cleared', {
            ...setCookieHeader('Clears the access, refresh and csrf cookies'),
          }),
          ...errorResponses(401, 403, 413, 415, 503),
          400: errorResponse(400, 'VALIDATION_FAILED: a malformed JSON body (none is needed)'),
        },
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
        operationId: 'listSessions',
        summary: "The caller's live sessions, newest first",
        security: bearerOrCookie,
        querystring: PageQuerySchema,
        response: {
          200: jsonResponse("A page of the caller's live sessions", ref(SessionListSchema)),
          ...errorResponses(400, 401, 503),
        },
      },
    },
    async (request) => sessions.list(principalOf(request), request.query),
  );

  app.delete(
    '/auth/sessions/:id',
    {
      schema: {
        tags: ['sessions'],
        operationId: 'revokeSession',
        summary: "Revoke one of the caller's sessions (404 for anyone else's)",
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        params: IdParamsSchema,
        response: {
          204: noContent('The session is revoked, with its access tokens'),
          ...errorResponses(400, 401, 403, 503),
          404: errorResponse(404, 'NOT_FOUND: no such live session of the caller'),
        },
      },
    },
    async (request, reply) => {
      await sessions.revoke(principalOf(request), request.params.id, requestContext(request));
      return reply.code(204).send(null);
    },
  );
};

export default sessionsRoutes;
