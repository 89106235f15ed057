// TOTP and recovery codes (authenticated), the second step of a login (public), and the admin's reset.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requestContext } from '../../lib/request-context.js';
import { principalOf } from '../../plugins/authenticate.js';
import { perIp } from '../../plugins/rate-limit.js';
import { TokenResponseSchema } from '../auth/auth.schemas.js';
import { tokenResponse } from '../auth/transport.js';
import {
  bearerOrCookie,
  CsrfHeadersSchema,
  errorResponse,
  errorResponses,
  IdParamsSchema,
  jsonResponse,
  noContent,
  publicRoute,
  ref,
  setCookieHeader,
} from '../common.schemas.js';
import {
  MfaVerifyBodySchema,
  RecoveryCodesSchema,
  TotpEnableBodySchema,
  TotpProofBodySchema,
  TotpSetupBodySchema,
  TotpSetupSchema,
} from './mfa.schemas.js';

const MINUTE = 60_000;
const wrongPassword = errorResponse(
  401,
  'INVALID_CREDENTIALS (wrong currentPassword), or the access token was refused',
);
const wrongCode = errorResponse(
  401,
  'MFA_CODE_INVALID (wrong or already used code), INVALID_CREDENTIALS (wrong currentPassword), or the access token was refused',
);

const mfaRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { mfa, cookiePolicy, config } = app;

  app.post(
    '/auth/mfa/totp/setup',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['mfa'],
        operationId: 'setupTotp',
        summary: 'Start enrolling an authenticator app: a new secret, inactive until enabled with a code',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: TotpSetupBodySchema,
        response: {
          200: jsonResponse('The secret and its otpauth URL (render the QR code locally)', ref(TotpSetupSchema)),
          ...errorResponses(403, 413, 415, 429, 503),
          400: errorResponse(400, 'VALIDATION_FAILED, or TOTP is already enabled'),
          401: wrongPassword,
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return mfa.setupTotp(principalOf(request), request.body.currentPassword, requestContext(request));
    },
  );

  app.post(
    '/auth/mfa/totp/enable',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['mfa'],
        operationId: 'enableTotp',
        summary: 'Turn TOTP on with a code of the new secret; returns ten recovery codes, shown once',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: TotpEnableBodySchema,
        response: {
          200: jsonResponse('TOTP is on; keep these codes somewhere safe', ref(RecoveryCodesSchema)),
          ...errorResponses(403, 413, 415, 503),
          400: errorResponse(400, 'VALIDATION_FAILED, or no setup is pending'),
          401: errorResponse(401, 'MFA_CODE_INVALID, or the access token was refused'),
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return { recoveryCodes: await mfa.enableTotp(principalOf(request), request.body.code, requestContext(request)) };
    },
  );

  app.post(
    '/auth/mfa/totp/disable',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['mfa'],
        operationId: 'disableTotp',
        summary: 'Turn TOTP off (the recovery codes go with it)',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: TotpProofBodySchema,
        response: {
          204: noContent('TOTP is off'),
          ...errorResponses(403, 413, 415, 429, 503),
          400: errorResponse(400, 'VALIDATION_FAILED, or TOTP is not enabled'),
          401: wrongCode,
        },
      },
    },
    async (request, reply) => {
      await mfa.disableTotp(principalOf(request), request.body, requestContext(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/mfa/recovery-codes',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['mfa'],
        operationId: 'regenerateRecoveryCodes',
        summary: 'A new set of ten recovery codes; the old set stops working',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: TotpProofBodySchema,
        response: {
          200: jsonResponse('The new codes, shown once', ref(RecoveryCodesSchema)),
          ...errorResponses(403, 413, 415, 429, 503),
          400: errorResponse(400, 'VALIDATION_FAILED, or TOTP is not enabled'),
          401: wrongCode,
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const recoveryCodes = await mfa.regenerateRecoveryCodes(
        principalOf(request),
        request.body,
        requestContext(request),
      );
      return { recoveryCodes };
    },
  );

  app.post(
    '/auth/mfa/verify',
    {
      config: { rateLimit: perIp('mfa-verify', config.rateLimit.loginPerIp, MINUTE) },
      schema: {
        tags: ['mfa'],
        operationId: 'verifyMfa',
        summary: 'The second step of a login: the mfaToken and a TOTP code or a recovery code',
        description: 'Wrong codes count as failed logins of the account; the fifth ends the second step.',
        security: publicRoute,
        body: MfaVerifyBodySchema,
        response: {
          200: jsonResponse(
            'Logged in: a new session (amr pwd, otp, mfa) and its token pair',
            ref(TokenResponseSchema),
            setCookieHeader('With transport `cookie`: the access, refresh and csrf cookies'),
          ),
          ...errorResponses(400, 413, 415, 429, 503),
          401: errorResponse(401, 'MFA_CODE_INVALID (wrong code), or MFA_TOKEN_INVALID (expired, used or unknown)'),
        },
      },
    },
    async (request, reply) => {
      const issued = await mfa.verifyLogin(request.body, requestContext(request));
      return tokenResponse(reply, cookiePolicy, issued, request.body.transport ?? 'body');
    },
  );

  app.delete(
    '/users/:id/mfa',
    {
      onRequest: app.authenticate,
      config: { permission: 'users:manage' },
      schema: {
        tags: ['users'],
        operationId: 'resetUserMfa',
        summary: "Remove a user's TOTP and recovery codes and revoke its sessions (account recovery)",
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        params: IdParamsSchema,
        response: {
          204: noContent('The second factor is gone and every session of the user revoked'),
          ...errorResponses(400, 401, 403, 503),
          404: errorResponse(404, 'NOT_FOUND: no such user'),
        },
      },
    },
    async (request, reply) => {
      await mfa.adminReset(principalOf(request).userId, request.params.id, requestContext(request));
      return reply.code(204).send(null);
    },
  );
};

export default mfaRoutes;
