// Public token-issuing routes: register and login.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requestContext } from '../../lib/request-context.js';
import { trimBodyFields } from '../../lib/trim-body.js';
import { errorResponses } from '../common.schemas.js';
import { UserEnvelopeSchema } from '../users/users.schemas.js';
import { LoginBodySchema, RegisterBodySchema, TokenResponseSchema } from './auth.schemas.js';
import { AuthService } from './auth.service.js';
import { TokenService } from './tokens.service.js';
import { tokenResponse } from './transport.js';

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const tokens = new TokenService(app.accessTokens, app.config, app.clock);
  const auth = new AuthService({ db: app.db, passwords: app.passwords, tokens, clock: app.clock, log: app.log });

  app.post(
    '/auth/register',
    {
      preValidation: trimBodyFields('email', 'name'),
      schema: {
        tags: ['auth'],
        summary: 'Register a user (role `user`)',
        body: RegisterBodySchema,
        response: { 201: UserEnvelopeSchema, ...errorResponses(400, 409, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      const user = await auth.register(request.body, requestContext(request));
      return reply.code(201).send({ user });
    },
  );

  app.post(
    '/auth/login',
    {
      preValidation: trimBodyFields('email'),
      schema: {
        tags: ['auth'],
        summary: 'Log in with email and password; opens a session',
        body: LoginBodySchema,
        response: { 200: TokenResponseSchema, ...errorResponses(400, 401, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      const { user, tokens: issued } = await auth.login(request.body, requestContext(request));
      return tokenResponse(reply, issued, user, request.body.transport ?? 'body');
    },
  );
};

export default authRoutes;
