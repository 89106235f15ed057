// Passkey routes: registration, list and removal (authenticated), and the sign-in (public, one per-IP budget).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
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
  PageQuerySchema,
  publicRoute,
  ref,
  setCookieHeader,
} from '../common.schemas.js';
import {
  EmptyBodySchema,
  PasskeyCreationOptionsSchema,
  PasskeyEnvelopeSchema,
  PasskeyListSchema,
  PasskeyLoginBodySchema,
  PasskeyLoginOptionsSchema,
  PasskeyRegisterBodySchema,
} from './passkeys.schemas.js';

const MINUTE = 60_000;
const PASSKEY_INVALID =
  'PASSKEY_INVALID: a bad attestation or assertion, a wrong origin or RP ID, an unknown credential, ' +
  'a used or expired challenge, or a signature counter that did not move forward';

/** The JSON forms as validated (their string members are checked by the verification itself). */
function credentialJson<T extends RegistrationResponseJSON | AuthenticationResponseJSON>(response: {
  authenticatorAttachment?: string | null;
}): T {
  const { authenticatorAttachment, ...rest } = response;
  return (authenticatorAttachment ? { ...rest, authenticatorAttachment } : rest) as unknown as T;
}

const passkeysRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { passkeys, cookiePolicy, config } = app;
  // Both sign-in routes count against this one budget.
  const signInBudget = perIp('passkey-login', config.rateLimit.passkeyPerIp, MINUTE);

  app.post(
    '/auth/passkeys/register/options',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['passkeys'],
        operationId: 'passkeyRegistrationOptions',
        summary: 'Start adding a passkey: creation options for navigator.credentials.create()',
        description:
          "Resident key and user verification required; the caller's passkeys are excluded. The challenge is kept " +
          'server-side for 300 s and works once.',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: EmptyBodySchema,
        response: {
          200: jsonResponse('PublicKeyCredentialCreationOptionsJSON', ref(PasskeyCreationOptionsSchema)),
          ...errorResponses(400, 401, 403, 413, 415, 503),
          404: errorResponse(404, 'NOT_FOUND: the user is gone'),
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return passkeys.registrationOptions(principalOf(request));
    },
  );

  app.post(
    '/auth/passkeys/register',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['passkeys'],
        operationId: 'registerPasskey',
        summary: 'Finish adding a passkey: the attestation, verified against the stored challenge',
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        body: PasskeyRegisterBodySchema,
        response: {
          201: jsonResponse('The new passkey', ref(PasskeyEnvelopeSchema)),
          ...errorResponses(400, 403, 413, 415, 503),
          401: errorResponse(401, `${PASSKEY_INVALID}; or the access token was refused`),
        },
      },
    },
    async (request, reply) => {
      const passkey = await passkeys.register(
        principalOf(request),
        { response: credentialJson<RegistrationResponseJSON>(request.body.response), name: request.body.name },
        requestContext(request),
      );
      return reply.code(201).send({ passkey });
    },
  );

  app.get(
    '/auth/passkeys',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['passkeys'],
        operationId: 'listPasskeys',
        summary: "The caller's passkeys, newest first",
        security: bearerOrCookie,
        querystring: PageQuerySchema,
        response: {
          200: jsonResponse('A page of passkeys', ref(PasskeyListSchema)),
          ...errorResponses(400, 401, 503),
        },
      },
    },
    async (request) => passkeys.list(principalOf(request), request.query),
  );

  app.delete(
    '/auth/passkeys/:id',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['passkeys'],
        operationId: 'deletePasskey',
        summary: "Remove one of the caller's passkeys (404 for anyone else's)",
        security: bearerOrCookie,
        headers: CsrfHeadersSchema,
        params: IdParamsSchema,
        response: {
          204: noContent('Removed: it signs in no more'),
          ...errorResponses(400, 401, 403, 503),
          404: errorResponse(404, 'NOT_FOUND: no such passkey of the caller'),
        },
      },
    },
    async (request, reply) => {
      await passkeys.remove(principalOf(request), request.params.id, requestContext(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/passkeys/login/options',
    {
      config: { rateLimit: signInBudget },
      schema: {
        tags: ['passkeys'],
        operationId: 'passkeyLoginOptions',
        summary: 'Start a sign-in with a passkey: a challenge and request options for discoverable credentials',
        description: 'Shares its per-IP budget with POST /auth/passkeys/login.',
        security: publicRoute,
        body: EmptyBodySchema,
        response: {
          200: jsonResponse(
            'The challenge id (send it back with the assertion) and PublicKeyCredentialRequestOptionsJSON',
            ref(PasskeyLoginOptionsSchema),
          ),
          ...errorResponses(400, 413, 415, 429, 503),
        },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      return passkeys.loginOptions();
    },
  );

  app.post(
    '/auth/passkeys/login',
    {
      config: { rateLimit: signInBudget },
      schema: {
        tags: ['passkeys'],
        operationId: 'loginWithPasskey',
        summary: 'Sign in with a passkey: opens a session (amr pop, mfa), even with TOTP enabled',
        description: 'The challenge is consumed by its first presentation, right or wrong.',
        security: publicRoute,
        body: PasskeyLoginBodySchema,
        response: {
          200: jsonResponse(
            'Signed in: a new session and its token pair',
            ref(TokenResponseSchema),
            setCookieHeader('With transport `cookie`: the access, refresh and csrf cookies'),
          ),
          ...errorResponses(400, 413, 415, 429, 503),
          401: errorResponse(401, PASSKEY_INVALID),
          403: errorResponse(403, 'EMAIL_NOT_VERIFIED (with EMAIL_VERIFICATION=required)'),
        },
      },
    },
    async (request, reply) => {
      const issued = await passkeys.login(
        {
          challengeId: request.body.challengeId,
          response: credentialJson<AuthenticationResponseJSON>(request.body.response),
        },
        requestContext(request),
      );
      return tokenResponse(reply, cookiePolicy, issued, request.body.transport ?? 'body');
    },
  );
};

export default passkeysRoutes;
