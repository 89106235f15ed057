// User routes: the caller's own profile and events, and administration behind permissions.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { requestContext } from '../../lib/request-context.js';
import { principalOf } from '../../plugins/authenticate.js';
import { assertPermission } from '../../plugins/authorize.js';
import { bearerOrCookie, errorResponses, IdParamsSchema, PageQuerySchema } from '../common.schemas.js';
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
        summary: 'The caller',
        security: bearerOrCookie,
        response: { 200: UserEnvelopeSchema, ...errorResponses(401, 503) },
      },
    },
    async (request) => ({ user: await users.me(principalOf(request).userId) }),
  );

  app.get(
    '/users/me/events',
    {
      schema: {
        tags: ['users'],
        summary: "The caller's security events, newest first",
        security: bearerOrCookie,
        querystring: PageQuerySchema,
        response: { 200: SecurityEventListSchema, ...errorResponses(400, 401, 503) },
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
        summary: 'All users, oldest first',
        security: bearerOrCookie,
        querystring: PageQuerySchema,
        response: { 200: UserListSchema, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (request) => users.list(request.query),
  );

  app.get(
    '/users/:id',
    {
      schema: {
        tags: ['users'],
        summary: 'One user',
        description: 'Requires the `users:read` permission, except for the caller itself.',
        'x-permission': 'users:read (or self)',
        security: bearerOrCookie,
        params: IdParamsSchema,
        response: { 200: UserEnvelopeSchema, ...errorResponses(400, 401, 403, 404, 503) },
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
        summary: "Replace a user's roles; the user's older access tokens are rejected at once",
        security: bearerOrCookie,
        params: IdParamsSchema,
        body: RolesBodySchema,
        response: { 200: UserEnvelopeSchema, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 503) },
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
        summary: 'Delete a user and all its sessions (its security events are kept)',
        security: bearerOrCookie,
        params: IdParamsSchema,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      await users.delete(principalOf(request).userId, request.params.id, requestContext(request));
      return reply.code(204).send(null);
    },
  );
};

export default usersRoutes;
