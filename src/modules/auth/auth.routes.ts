// Token routes: register, login, refresh, logout (public), and the password change (authenticated).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { RefreshTokenInvalid, TokenInvalid, TokenMissing } from '../../errors.js';
import { requestContext } from '../../lib/request-context.js';
import { optionalBody, trimBodyFields } from '../../lib/trim-body.js';
import type { VerifiedAccessToken } from '../../plugins/access-tokens.js';
import { principalOf } from '../../plugins/authenticate.js';
import { perIp } from '../../plugins/rate-limit.js';
import { bearerOrCookie, errorResponses } from '../common.schemas.js';
import { UserEnvelopeSchema } from '../users/users.schemas.js';
import {
  LoginBodySchema,
  LogoutBodySchema,
  PasswordChangeBodySchema,
  RefreshBodySchema,
  RegisterBodySchema,
  TokenResponseSchema,
} from './auth.schemas.js';
import { tokenResponse } from './transport.js';

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { auth, sessions, accessTokens, cookiePolicy, config } = app;
  const MINUTE = 60_000;
  const limits = config.rateLimit;

  app.post(
    '/auth/register',
    {
      preValidation: trimBodyFields('email', 'name'),
      config: { rateLimit: perIp('register', limits.registerPerIp, MINUTE) },
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
      config: {
        rateLimit: perIp('login', limits.loginPerIp, MINUTE, (request) => {
          const { email } = request.body as { email: string };
          auth
            .recordLoginRateLimited(email, requestContext(request), MINUTE)
            .catch((error: unknown) => request.log.warn({ err: error }, 'could not record rate_limited event'));
        }),
      },
      schema: {
        tags: ['auth'],
        summary: 'Log in with email and password; opens a session',
        body: LoginBodySchema,
        response: { 200: TokenResponseSchema, ...errorResponses(400, 401, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      const issued = await auth.login(request.body, requestContext(request));
      return tokenResponse(reply, cookiePolicy, issued, request.body.transport ?? 'body');
    },
  );

  app.post(
    '/auth/refresh',
    {
      preValidation: optionalBody,
      config: { rateLimit: perIp('refresh', limits.refreshPerIp, MINUTE) },
      schema: {
        tags: ['auth'],
        summary: 'Rotate a refresh token for a new pair (body token, or refresh cookie + X-CSRF-Token)',
        body: RefreshBodySchema,
        response: { 200: TokenResponseSchema, ...errorResponses(400, 401, 403, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      const presented = app.credentials(request, request.body.refreshToken).refresh;
      if (!presented) throw new RefreshTokenInvalid();
      const issued = await sessions.refresh(presented.token, requestContext(request), presented.assertCsrf);
      const transport = request.body.transport ?? (presented.via === 'cookie' ? 'cookie' : 'body');
      return tokenResponse(reply, cookiePolicy, issued, transport);
    },
  );

  app.post(
    '/auth/logout',
    {
      preValidation: optionalBody,
      schema: {
        tags: ['auth'],
        summary: 'End the session of the presented credential (refresh token, access token, or cookies); idempotent',
        body: LogoutBodySchema,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const presented = app.credentials(request, request.body.refreshToken);
      // Explicit credentials win: cookies riding along with a Bearer header or a body token are ignored.
      const explicit = presented.access?.via === 'header' || presented.refresh?.via === 'body';
      const access = explicit && presented.access?.via !== 'header' ? undefined : presented.access;
      const refresh = explicit && presented.refresh?.via !== 'body' ? undefined : presented.refresh;
      if (!access && !refresh) throw new TokenMissing();
      let verified: VerifiedAccessToken | undefined;
      if (access) {
        try {
          // Expired or already revoked tokens still log out; forged ones do not.
          verified = await accessTokens.verify(access.token, { ignoreExpiration: true });
        } catch (error) {
          if (!(error instanceof TokenInvalid) || !refresh) throw error;
        }
      }
      await sessions.logout(
        {
          accessToken: verified && access ? { verified, assertCsrf: access.assertCsrf } : undefined,
          refreshToken: refresh,
        },
        requestContext(request),
      );
      cookiePolicy.clearSession(reply);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/password',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['auth'],
        summary: 'Change the password; every other session is revoked, this one stays',
        security: bearerOrCookie,
        body: PasswordChangeBodySchema,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      await auth.changePassword(principalOf(request), request.body, requestContext(request));
      return reply.code(204).send(null);
    },
  );
};

export default authRoutes;
