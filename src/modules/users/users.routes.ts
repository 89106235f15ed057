// User routes: the caller's own profile.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TokenRevoked } from '../../errors.js';
import { principalOf } from '../../plugins/authenticate.js';
import { errorResponses } from '../common.schemas.js';
import { findUserById, toUser } from './users.repository.js';
import { UserEnvelopeSchema } from './users.schemas.js';

export const bearerOrCookie: { [scheme: string]: string[] }[] = [{ bearerAuth: [] }, { cookieAuth: [] }];

const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
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
    async (request) => {
      const row = await findUserById(app.db, principalOf(request).userId);
      // A deleted user's tokens are deny-listed; should one slip through, it is revoked, not a 404.
      if (!row) throw new TokenRevoked();
      return { user: toUser(row) };
    },
  );
};

export default usersRoutes;
