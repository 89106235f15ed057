// One error handler: every failure leaves in the contract's shape, with its catalogue code.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { isPostgresUnavailable } from '../db/client.js';
import { bearerChallengeError, DependencyUnavailable, type ErrorCode, errorBody } from '../errors.js';

const catalogueCodes = new Set<string>([
  'VALIDATION_FAILED',
  'PASSWORD_TOO_WEAK',
  'INVALID_CREDENTIALS',
  'TOKEN_MISSING',
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'TOKEN_REVOKED',
  'REFRESH_TOKEN_INVALID',
  'REFRESH_TOKEN_REUSED',
  'CSRF_FAILED',
  'FORBIDDEN',
  'NOT_FOUND',
  'EMAIL_TAKEN',
  'LAST_ADMIN',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'SERVICE_UNAVAILABLE',
] satisfies ErrorCode[]);

// Framework errors that are the client's fault, by status.
const codeForStatus: Partial<Record<number, ErrorCode>> = {
  400: 'VALIDATION_FAILED',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
};

interface Classified {
  statusCode: number;
  code: ErrorCode;
  message: string;
}

function validationMessage(error: FastifyError): string {
  const [first] = error.validation ?? [];
  if (!first) return error.message;
  const path = `${error.validationContext ?? 'body'}${first.instancePath}`;
  const params = first.params as { additionalProperty?: string; missingProperty?: string };
  if (params.additionalProperty) return `${path}/${params.additionalProperty} is not allowed`;
  if (params.missingProperty) return `${path}/${params.missingProperty} is required`;
  return `${path} ${first.message ?? 'is invalid'}`;
}

function classify(error: FastifyError, request: FastifyRequest): Classified {
  if (error.validation) return { statusCode: 400, code: 'VALIDATION_FAILED', message: validationMessage(error) };
  if (error.code && catalogueCodes.has(error.code) && error.statusCode) {
    return { statusCode: error.statusCode, code: error.code as ErrorCode, message: error.message };
  }
  if (error instanceof DependencyUnavailable || isPostgresUnavailable(error)) {
    return { statusCode: 503, code: 'SERVICE_UNAVAILABLE', message: 'A backing service is unavailable; retry shortly' };
  }
  const status = error.statusCode ?? 500;
  const code = codeForStatus[status];
  if (code === 'VALIDATION_FAILED') {
    // Malformed JSON, an empty JSON body, a bad Content-Length.
    return { statusCode: 400, code, message: `Malformed request: ${error.message}` };
  }
  if (code === 'PAYLOAD_TOO_LARGE') {
    return {
      statusCode: 413,
      code,
      message: `The request body exceeds ${request.server.initialConfig.bodyLimit} bytes`,
    };
  }
  if (code === 'UNSUPPORTED_MEDIA_TYPE') {
    return { statusCode: 415, code, message: 'Request bodies must be application/json' };
  }
  if (code) return { statusCode: status, code, message: error.message };
  return { statusCode: 500, code: 'INTERNAL_ERROR', message: `Internal server error (request id ${request.id})` };
}

/** The 404 for unknown routes; registered by the rate-limit plugin, which puts a budget in front of it. */
export function notFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(reply, 404, 'NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]} not found`);
}

export function sendError(reply: FastifyReply, statusCode: number, code: ErrorCode, message: string): FastifyReply {
  const { issuer } = reply.server.config;
  if (statusCode === 401 || bearerChallengeError[code]) {
    const challengeError = bearerChallengeError[code];
    reply.header(
      'www-authenticate',
      challengeError ? `Bearer realm="${issuer}", error="${challengeError}"` : `Bearer realm="${issuer}"`,
    );
  }
  return reply
    .code(statusCode)
    .type('application/json; charset=utf-8')
    .send(errorBody(statusCode, code, message));
}

export default fp(
  async (app) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const { statusCode, code, message } = classify(error, request);
      const { retryAfterSeconds } = error as { retryAfterSeconds?: number };
      if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
      if (statusCode === 503) request.log.warn({ err: error }, 'dependency unavailable');
      else if (statusCode >= 500) request.log.error({ err: error }, 'request failed');
      return sendError(reply, statusCode, code, message);
    });
  },
  { name: 'error-handler', dependencies: ['config'] },
);
