// User routes: the caller's own profile and events, and administration behind permissions.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requestContext } from '../../lib/request-context.js';
import { principalOf } from '../../plugins/authenticate.js';
import { assertPermission } from '../../plugins/authorize.js';
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
} from '../common.schemas.js';
import { SecurityEventListSchema } from '../security-events/security-events.schemas.js';
import { RolesBodySchema, UserEnvelopeSchema, UserListSchema } from './users.schemas.js';

const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { users } = app;
  app.addHook('onRequest', app.authenticate);

  app.get(
    '/users/me',
    {
      schema: {
        tags: ['users'],
        operationId: 'getMe',
        summary: 'The caller',
        security: bearerOrCookie,
        response: { 200: jsonResponse('The caller', ref(UserEnvelopeSchema)), ...errorResponses(401, 503) },
      },
    },
    async (request) => ({ user: await users.me(principalOf(request).userId) }),
  );

  app.get(
    '/users/me/events',
    {
      schema: {
        tags: ['users'],
        operationId: 'listMyEvents',
        summary: "The caller's security events, newest first",
        security: bearerOrCookie,
        querystring: PageQuerySchema,
        response: {
          200: jsonResponse("A page of the caller's security events", ref(SecurityEventListSchema)),
          ...errorResponses(400, 401, 503),
        },
      },
    },
    async (request) => users.events(principalOf(request).userId, request.query),
  );

  app.get(
    '/users',
    {
      config: { permission: 'users:read' },
      schema: {
        tags: ['users'],
        operationId: 'listUsers',
        summary: 'All users, oldest first',
        description: 'Requires the `users:read` permission.',
        security: bearerOrCookie,
        querystring: PageQuerySchema,
        response: {
          200: jsonResponse('A page of users', ref(UserListSchema)),
          ...errorResponses(400, 401, 503),
          403: errorResponse(403, 'FORBIDDEN: the caller lacks `users:read`'),
        },
      },
    },
    async (request) => users.list(request.query),
  );

  app.get(
    '/users/:id',
    {
      schema: {
        tags: ['users'],
        operationId: 'getUser',
        summary: 'One user',
        description: 'Requires the `users:read` permission, except for the caller itself.',
        'x-permission': 'users:read (or self)',
        security: bearerOrCookie,
        params: IdParamsSchema,
        response: {
          200: jsonResponse('The user', ref(UserEnvelopeSchema)),
          ...errorResponses(400, 401, 503),
          403: errorResponse(403, "FORBIDDEN: another user's record without `users:read`"),
          404: errorResponse(404, 'NOT_FOUND: no such user'),
        },
      },
    },
    async (request) => {
      // UUIDs compare case-insensitively, as Postgres does.
      if (principalOf(request).userId !== request.params.id.toLowerCase()) assertPermission(request, 'users:read');
      return { user: await users.get(request.params.id) };
    },
  );

  app.put(
    '/users/:id/roles',
    {
      config: { permission: 'users:manage' },
      schema: {
        tags: ['users'],
        operationId: 'setUserRoles',
        summary: "Replace a user's roles; the user's older access tokens are rejected at once",
        description: 'Requires the `users:manage` permission.',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        params: IdParamsSchema,
        body: RolesBodySchema,
        response: {
          200: jsonResponse('The user with its new roles', ref(UserEnvelopeSchema)),
          ...errorResponses(400, 401, 403, 413, 415, 503),
          404: errorResponse(404, 'NOT_FOUND: no such user'),
          409: errorResponse(409, 'LAST_ADMIN: the change would leave no admin'),
        },
      },
    },
    async (request) => {
      const { userId } = principalOf(request);
      const user = await users.setRoles(userId, request.params.id, request.body.roles, requestContext(request));
      return { user };
    },
  );

  app.delete(
    '/users/:id',
    {
      config: { permission: 'users:manage' },
      schema: {
        tags: ['users'],
        operationId: 'deleteUser',
        summary: 'Delete a user and all its sessions (its security events are kept)',
        description: 'Requires the `users:manage` permission.',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        params: IdParamsSchema,
        response: {
          204: noContent('The user is deleted and all its sessions revoked'),
          ...errorResponses(400, 401, 403, 503),
          404: errorResponse(404, 'NOT_FOUND: no such user'),
          409: errorResponse(409, 'LAST_ADMIN: the user is the last admin'),
        },
      },
    },
    async (request, reply) => {
      await users.delete(principalOf(request).userId, request.params.id, requestContext(request));
      return reply.code(204).send(null);
    },
  );
};

export default usersRoutes;
