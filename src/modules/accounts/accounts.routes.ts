// Account routes: email verification, password reset and email change (contract: Accounts, v1.1).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requestContext } from '../../lib/request-context.js';
import { trimBodyFields } from '../../lib/trim-body.js';
import { principalOf } from '../../plugins/authenticate.js';
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
} from '../common.schemas.js';
import { UserEnvelopeSchema } from '../users/users.schemas.js';
import {
  AcceptedSchema,
  ActionTokenBodySchema,
  EmailChangeBodySchema,
  MailRequestBodySchema,
  PasswordResetBodySchema,
} from './accounts.schemas.js';
import type { DeferredWork } from './accounts.service.js';

const HOUR = 60 * 60 * 1000;
const accepted = (description: string) => jsonResponse(description, ref(AcceptedSchema));
const invalidLink = errorResponse(
  400,
  'ACTION_TOKEN_INVALID (unknown, used, expired, voided or another purpose), or VALIDATION_FAILED',
);

const accountRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { accounts, config } = app;
  const mailPerIp = config.rateLimit.mailPerIp;

  // Work that must not shape the answer runs once the response has gone.
  const afterResponse = new WeakMap<FastifyRequest, DeferredWork>();
  app.addHook('onResponse', async (request) => {
    const work = afterResponse.get(request);
    if (work) accounts.runInBackground(request.routeOptions.url ?? 'account mail', work);
  });

  app.post(
    '/auth/verify-email/request',
    {
      preValidation: trimBodyFields('email'),
      config: { rateLimit: perIp('mail-verify', mailPerIp, HOUR) },
      schema: {
        tags: ['accounts'],
        operationId: 'requestEmailVerification',
        summary: 'Mail a verification link, if the address belongs to an unverified account',
        description: 'The answer is the same, in the same time, for every address.',
        security: publicRoute,
        body: MailRequestBodySchema,
        response: {
          202: accepted('Accepted; a link goes out only to an existing, unverified account'),
          ...errorResponses(400, 413, 415, 429, 503),
        },
      },
    },
    async (request, reply) => {
      afterResponse.set(
        request,
        await accounts.acceptMailRequest('verify_email', request.body.email, requestContext(request)),
      );
      return reply.code(202).send({});
    },
  );

  app.post(
    '/auth/verify-email',
    {
      schema: {
        tags: ['accounts'],
        operationId: 'verifyEmail',
        summary: 'Confirm an email address with the token of a verification link',
        security: publicRoute,
        body: ActionTokenBodySchema,
        response: {
          200: jsonResponse('The user, with `emailVerified: true`', ref(UserEnvelopeSchema)),
          ...errorResponses(413, 415, 503),
          400: invalidLink,
        },
      },
    },
    async (request) => ({ user: await accounts.verifyEmail(request.body.token, requestContext(request)) }),
  );

  app.post(
    '/auth/password-reset/request',
    {
      preValidation: trimBodyFields('email'),
      config: { rateLimit: perIp('mail-reset', mailPerIp, HOUR) },
      schema: {
        tags: ['accounts'],
        operationId: 'requestPasswordReset',
        summary: 'Mail a password-reset link, if the address belongs to an account',
        description: 'The answer is the same, in the same time, for every address. A new link voids the older ones.',
        security: publicRoute,
        body: MailRequestBodySchema,
        response: {
          202: accepted('Accepted; a link goes out only to an existing account'),
          ...errorResponses(400, 413, 415, 429, 503),
        },
      },
    },
    async (request, reply) => {
      afterResponse.set(
        request,
        await accounts.acceptMailRequest('password_reset', request.body.email, requestContext(request)),
      );
      return reply.code(202).send({});
    },
  );

  app.post(
    '/auth/password-reset',
    {
      schema: {
        tags: ['accounts'],
        operationId: 'resetPassword',
        summary: 'Set a new password with the token of a reset link; every session of the user ends',
        description:
          'Every refresh token of the user is revoked and every access token issued before is rejected at once ' +
          '(TOKEN_REVOKED). The email counts as verified.',
        security: publicRoute,
        body: PasswordResetBodySchema,
        response: {
          204: noContent('Password replaced; the user must log in again everywhere'),
          ...errorResponses(413, 415, 503),
          400: errorResponse(400, 'ACTION_TOKEN_INVALID, PASSWORD_TOO_WEAK, or VALIDATION_FAILED'),
        },
      },
    },
    async (request, reply) => {
      await accounts.resetPassword(request.body.token, request.body.newPassword, requestContext(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/email',
    {
      onRequest: app.authenticate,
      preValidation: trimBodyFields('newEmail'),
      config: { rateLimit: perIp('mail-change', mailPerIp, HOUR) },
      schema: {
        tags: ['accounts'],
        operationId: 'requestEmailChange',
        summary: 'Ask to move the account to a new address: a link goes to it, a notice to the current one',
        description:
          'Nothing changes until the link is opened. An address that is already registered is sent nothing, ' +
          'and the answer is the same.',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: EmailChangeBodySchema,
        response: {
          202: accepted('Accepted; the confirmation link goes to the new address'),
          ...errorResponses(400, 403, 413, 415, 429, 503),
          401: errorResponse(401, 'INVALID_CREDENTIALS (wrong currentPassword), or the access token was refused'),
        },
      },
    },
    async (request, reply) => {
      afterResponse.set(
        request,
        await accounts.acceptEmailChange(principalOf(request), request.body, requestContext(request)),
      );
      return reply.code(202).send({});
    },
  );

  app.post(
    '/auth/email/confirm',
    {
      schema: {
        tags: ['accounts'],
        operationId: 'confirmEmailChange',
        summary: 'Move the account to its new address with the token of the confirmation link',
        security: publicRoute,
        body: ActionTokenBodySchema,
        response: {
          200: jsonResponse('The user with its new, verified email', ref(UserEnvelopeSchema)),
          ...errorResponses(413, 415, 503),
          400: invalidLink,
          409: errorResponse(409, 'EMAIL_TAKEN: the address was registered since the link was sent'),
        },
      },
    },
    async (request) => ({ user: await accounts.confirmEmailChange(request.body.token, requestContext(request)) }),
  );
};

export default accountRoutes;
