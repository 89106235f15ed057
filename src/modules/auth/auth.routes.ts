// Token routes: register, login, refresh, logout (public), and the password change (authenticated).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { RefreshTokenInvalid, TokenInvalid, TokenMissing } from '../../errors.js';
import { requestContext } from '../../lib/request-context.js';
import { optionalBody, trimBodyFields } from '../../lib/trim-body.js';
import type { VerifiedAccessToken } from '../../plugins/access-tokens.js';
import { principalOf } from '../../plugins/authenticate.js';
import { countOutcomes } from '../../plugins/metrics.js';
import { perIp } from '../../plugins/rate-limit.js';
import {
  bearerOrCookie,
  CsrfHeadersSchema,
  errorResponse,
  errorResponses,
  jsonResponse,
  noContent,
  publicRoute,
  ref,
  setCookieHeader,
} from '../common.schemas.js';
import { UserEnvelopeSchema } from '../users/users.schemas.js';
import {
  LoginBodySchema,
  LoginResponseSchema,
  LogoutBodySchema,
  PasswordChangeBodySchema,
  RefreshBodySchema,
  RegisterBodySchema,
  TokenResponseSchema,
} from './auth.schemas.js';
import { tokenResponse } from './transport.js';

const tokenCookies = setCookieHeader(
  'With transport `cookie`: the access, refresh and csrf cookies (HttpOnly, Secure, SameSite=Strict)',
);
const tokensIssued = (description: string) => jsonResponse(description, ref(TokenResponseSchema), tokenCookies);

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { auth, sessions, accessTokens, cookiePolicy, config, metrics } = app;
  const MINUTE = 60_000;
  const limits = config.rateLimit;

  app.post(
    '/auth/register',
    {
      preValidation: trimBodyFields('email', 'name'),
      config: { rateLimit: perIp('register', limits.registerPerIp, MINUTE) },
      schema: {
        tags: ['auth'],
        operationId: 'register',
        summary: 'Register a user (role `user`)',
        security: publicRoute,
        body: RegisterBodySchema,
        response: {
          201: jsonResponse('The new user', ref(UserEnvelopeSchema)),
          ...errorResponses(413, 415, 429, 503),
          400: errorResponse(400, 'VALIDATION_FAILED, or PASSWORD_TOO_WEAK'),
          409: errorResponse(409, 'EMAIL_TAKEN'),
        },
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
      ...countOutcomes(metrics.logins),
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
        operationId: 'login',
        summary: 'Log in with email and password; opens a session',
        security: publicRoute,
        body: LoginBodySchema,
        response: {
          200: jsonResponse(
            'Logged in (a new session and its token pair), or `mfaRequired` when TOTP is enabled (nothing issued)',
            ref(LoginResponseSchema),
            tokenCookies,
          ),
          ...errorResponses(400, 413, 415, 429, 503),
          401: errorResponse(401, 'INVALID_CREDENTIALS: wrong email or password'),
        },
      },
    },
    async (request, reply) => {
      const outcome = await auth.login(request.body, requestContext(request));
      if (outcome.kind === 'mfa') {
        reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
        return {
          mfaRequired: true as const,
          mfaToken: outcome.mfaToken,
          mfaExpiresIn: outcome.expiresIn,
          methods: ['totp' as const, 'recovery_code' as const],
        };
      }
      return tokenResponse(reply, cookiePolicy, outcome, request.body.transport ?? 'body');
    },
  );

  app.post(
    '/auth/refresh',
    {
      ...countOutcomes(metrics.refreshes),
      preValidation: optionalBody,
      config: { rateLimit: perIp('refresh', limits.refreshPerIp, MINUTE) },
      schema: {
        tags: ['auth'],
        operationId: 'refresh',
        summary: 'Rotate a refresh token for a new pair (body token, or refresh cookie + X-CSRF-Token)',
        security: publicRoute,
        headers: CsrfHeadersSchema,
        body: RefreshBodySchema,
        response: {
          200: tokensIssued('A new token pair in the same session'),
          ...errorResponses(400, 413, 415, 429, 503),
          401: errorResponse(401, 'REFRESH_TOKEN_INVALID, or REFRESH_TOKEN_REUSED (the session is then revoked)'),
          403: errorResponse(403, 'CSRF_FAILED: the refresh cookie without a matching X-CSRF-Token'),
        },
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
        operationId: 'logout',
        summary: 'End the session of the presented credential (refresh token, access token, or cookies); idempotent',
        description:
          'Send a refresh token in the body, or an access token as Bearer, or the cookies (then X-CSRF-Token). ' +
          'Expired or already revoked credentials still answer 204.',
        security: publicRoute,
        headers: CsrfHeadersSchema,
        body: LogoutBodySchema,
        response: {
          204: noContent('Logged out (or already logged out); the session cookies are cleared', {
            ...setCookieHeader('Clears the access, refresh and csrf cookies'),
          }),
          ...errorResponses(400, 413, 415, 503),
          401: errorResponse(401, 'TOKEN_MISSING (no credential at all), or TOKEN_INVALID (a forged access token)'),
          403: errorResponse(403, 'CSRF_FAILED: a cookie credential without a matching X-CSRF-Token'),
        },
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
        operationId: 'changePassword',
        summary: 'Change the password; every other session is revoked, this one stays',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: PasswordChangeBodySchema,
        response: {
          204: noContent('Password changed; every other session of the caller is revoked'),
          ...errorResponses(403, 413, 415, 429, 503),
          400: errorResponse(400, 'VALIDATION_FAILED, or PASSWORD_TOO_WEAK'),
          401: errorResponse(401, 'INVALID_CREDENTIALS (wrong currentPassword), or the access token was refused'),
        },
      },
    },
    async (request, reply) => {
      await auth.changePassword(principalOf(request), request.body, requestContext(request));
      return reply.code(204).send(null);
    },
  );
};

export default authRoutes;
