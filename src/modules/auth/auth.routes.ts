// Public token routes: register, login, refresh, logout.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { RefreshTokenInvalid, TokenInvalid, TokenMissing } from '../../errors.js';
import { requestContext } from '../../lib/request-context.js';
import { optionalBody, trimBodyFields } from '../../lib/trim-body.js';
import type { VerifiedAccessToken } from '../../plugins/access-tokens.js';
import { presentedAccessToken } from '../../plugins/authenticate.js';
import { perIp } from '../../plugins/rate-limit.js';
import { errorResponses } from '../common.schemas.js';
import { UserEnvelopeSchema } from '../users/users.schemas.js';
import {
  LoginBodySchema,
  LogoutBodySchema,
  RefreshBodySchema,
  RegisterBodySchema,
  TokenResponseSchema,
} from './auth.schemas.js';
import { assertCsrf, clearSessionCookies, cookieNames } from './cookie-policy.js';
import { tokenResponse } from './transport.js';

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { services, accessTokens, config } = app;
  const cookies = cookieNames(config.cookieSecure);
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
      const user = await services.auth.register(request.body, requestContext(request));
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
          services.auth
            .recordLoginRateLimited(email, requestContext(request))
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
      const { user, tokens } = await services.auth.login(request.body, requestContext(request));
      return tokenResponse(reply, tokens, user, request.body.transport ?? 'body');
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
      const fromBody = request.body.refreshToken;
      const fromCookie = request.cookies[cookies.refresh];
      const presented = fromBody ?? fromCookie;
      if (!presented) throw new RefreshTokenInvalid();
      if (!fromBody) assertCsrf(request, config.cookieSecure);
      const { user, tokens } = await services.tokens.refresh(presented, requestContext(request));
      return tokenResponse(reply, tokens, user, request.body.transport ?? (fromBody ? 'body' : 'cookie'));
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
      const presentedAccess = presentedAccessToken(request, config.cookieSecure);
      let accessToken: string | undefined;
      let refreshToken: string | undefined;
      if (presentedAccess?.via === 'header' || request.body.refreshToken) {
        // Explicit credentials: cookies riding along are ignored, and no CSRF header is needed.
        accessToken = presentedAccess?.via === 'header' ? presentedAccess.token : undefined;
        refreshToken = request.body.refreshToken;
      } else {
        accessToken = presentedAccess?.token;
        refreshToken = request.cookies[cookies.refresh];
        if (accessToken || refreshToken) assertCsrf(request, config.cookieSecure);
      }
      if (!accessToken && !refreshToken) throw new TokenMissing();
      let verified: VerifiedAccessToken | undefined;
      if (accessToken) {
        try {
          // Expired or already revoked tokens still log out; forged ones do not.
          verified = await accessTokens.verify(accessToken, { ignoreExpiration: true });
        } catch (error) {
          if (!(error instanceof TokenInvalid) || !refreshToken) throw error;
        }
      }
      await services.sessions.logout({ accessToken: verified, refreshToken }, requestContext(request));
      clearSessionCookies(reply, config.cookieSecure);
      return reply.code(204).send(null);
    },
  );
};

export default authRoutes;
