// One error handler: every failure leaves in the contract's shape, with its catalogue code. That includes what
// Fastify's router answers (frameworkErrors), what Node's HTTP parser answers (clientErrorHandler) and the 404.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import { stdSerializers } from 'pino';
import { isPostgresUnavailable } from '../db/client.js';
import {
  bearerChallengeError,
  DependencyUnavailable,
  type ErrorCode,
  errorBody,
  errorTable,
  isErrorCode,
  ValidationFailed,
} from '../errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A preHandler the 404 handler runs first: the rate-limit plugin installs a per-IP budget here (probing for
     * routes is reconnaissance). Looked up per request, so this plugin can stay first in the registration order.
     */
    notFoundBudget: ((request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) | null;
  }
}

// Framework errors (Fastify, its plugins, Node) that are the client's fault, by status. A 4xx not listed here is
// answered 400 VALIDATION_FAILED, so no framework code (FST_*) ever reaches a client.
const codeForStatus: Partial<Record<number, ErrorCode>> = {
  400: 'VALIDATION_FAILED',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'VALIDATION_FAILED',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  431: 'VALIDATION_FAILED',
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

// Our own words for the framework's errors: theirs echo the URL or name internals.
const frameworkMessages: Record<string, string> = {
  FST_ERR_BAD_URL: 'Malformed request: the URL is not valid',
  FST_ERR_MAX_PARAM_LENGTH: 'Malformed request: a path parameter is too long',
  FST_ERR_CTP_INVALID_JSON_BODY: 'Malformed request: the body is not valid JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'Malformed request: the JSON body is empty',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'Malformed request: the body size does not match Content-Length',
};

function classify(error: FastifyError, request: FastifyRequest): Classified {
  if (error.validation) return { statusCode: 400, code: 'VALIDATION_FAILED', message: validationMessage(error) };
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    // An id too long to be one is a malformed id: 400 (contract Details, Ids), not the router's 414.
    return { statusCode: 400, code: 'VALIDATION_FAILED', message: frameworkMessages[error.code] as string };
  }
  if (isErrorCode(error.code) && error.statusCode) {
    return { statusCode: error.statusCode, code: error.code, message: error.message };
  }
  if (error instanceof DependencyUnavailable || isPostgresUnavailable(error)) {
    return { statusCode: 503, code: 'SERVICE_UNAVAILABLE', message: errorTable.SERVICE_UNAVAILABLE.message };
  }
  const status = error.statusCode ?? 500;
  if (status < 400 || status >= 500) {
    return { statusCode: 500, code: 'INTERNAL_ERROR', message: `Internal server error (request id ${request.id})` };
  }
  const code = codeForStatus[status];
  switch (code) {
    case undefined:
      return { statusCode: 400, code: 'VALIDATION_FAILED', message: 'Malformed request' };
    case 'VALIDATION_FAILED':
      return {
        statusCode: status,
        code,
        message: frameworkMessages[error.code] ?? `Malformed request: ${error.message}`,
      };
    case 'PAYLOAD_TOO_LARGE':
      return {
        statusCode: 413,
        code,
        message: `The request body exceeds ${request.server.initialConfig.bodyLimit} bytes`,
      };
    case 'NOT_FOUND':
      return { statusCode: 404, code, message: 'Not found' };
    case 'RATE_LIMITED':
      return { statusCode: 429, code, message: error.message };
    default:
      return { statusCode: status, code, message: errorTable[code].message };
  }
}

/** The 404 for unknown routes. */
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

/**
 * Fastify's `frameworkErrors` option: a malformed URL escape or an over-long path parameter, found by the router
 * before any route (or error handler) applies.
 */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (error, request, reply) => {
  const { statusCode, code, message } = classify(error as FastifyError, request);
  reply.header('x-request-id', request.id);
  sendError(reply, statusCode, code, message);
};

const clientErrorMessages: Record<number, string> = {
  400: 'Malformed HTTP request',
  408: errorTable.REQUEST_TIMEOUT.message,
  413: 'The request is too large',
  431: 'The request headers are too large',
};

function clientErrorStatus(error: Error & { code?: string }): number {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    default:
      return 400;
  }
}

/**
 * Fastify's `clientErrorHandler` option: what Node's HTTP parser rejects on its own (a bad request line, a bad or
 * duplicate Content-Length, a bad chunk, headers over the limit) and a request that did not arrive in time. Writes
 * a complete response in the contract's shape, then closes the connection: after a parse error the stream
 * cannot be trusted.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const statusCode = clientErrorStatus(error);
  const code = codeForStatus[statusCode] ?? 'VALIDATION_FAILED';
  const body = JSON.stringify(errorBody(statusCode, code, clientErrorMessages[statusCode] ?? 'Malformed request'));
  // Only if no response has begun on this socket: bytes of ours mid-response would corrupt it.
  const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !pending?.headersSent) {
    socket.end(
      `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\n` +
        'Connection: close\r\n' +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        '\r\n' +
        body,
    );
  }
  socket.destroySoon();
}

/** Code and class of a database error, or undefined for any other error. */
function databaseErrorOf(error: unknown): { sqlState?: string; name: string } | undefined {
  let database = false;
  let sqlState: string | undefined;
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const { code, severity } = current as { code?: unknown; severity?: unknown };
    // drizzle's wrapper names the query and its parameters (argon2 hashes, token hashes) in its message.
    if (current.name === 'DrizzleQueryError' || current.message.startsWith('Failed query:')) database = true;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string') {
      database = true;
      sqlState ??= code;
    }
  }
  if (!database) return undefined;
  return { sqlState, name: (error as Error).name };
}

/**
 * The pino `err` serializer: a database error is logged by SQL state and class only, never its message, query
 * or parameters (they hold password and token hashes, or whatever a client sent); anything else as pino would.
 */
export function serializeError(error: Error): ReturnType<typeof stdSerializers.err> {
  const database = databaseErrorOf(error);
  if (database) {
    const serialized = {
      type: database.name,
      message: `database error (SQL state ${database.sqlState ?? 'unknown'})`,
      // The frames only: the stack's first line repeats the message.
      stack: (error.stack ?? '')
        .split('\n')
        .filter((line) => line.startsWith('    at '))
        .join('\n'),
      sqlState: database.sqlState,
    };
    // pino-std-serializers' shape: the raw error rides along, not enumerable, so it is never written.
    return Object.defineProperty(serialized, 'raw', { value: error, enumerable: false }) as typeof serialized & {
      raw: Error;
    };
  }
  return stdSerializers.err(error);
}

/** Log fields for a failed request: `{ err }`, except a database error, which is `{ sqlState, name }` only. */
function logFields(error: unknown): Record<string, unknown> {
  const database = databaseErrorOf(error);
  return database ? { sqlState: database.sqlState, name: database.name } : { err: error };
}

export default fp(
  async (app) => {
    app.decorate('notFoundBudget', null);

    app.setErrorHandler((error: FastifyError, request, reply) => {
      const { statusCode, code, message } = classify(error, request);
      const { retryAfterSeconds } = error as { retryAfterSeconds?: number };
      if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
      if (statusCode === 503) request.log.warn(logFields(error), 'dependency unavailable');
      else if (statusCode >= 500) request.log.error(logFields(error), 'request failed');
      return sendError(reply, statusCode, code, message);
    });

    app.setNotFoundHandler(
      {
        preHandler: async (request: FastifyRequest, reply: FastifyReply) => {
          await app.notFoundBudget?.(request, reply);
        },
      },
      notFound,
    );

    // Node answers a missing Host with an empty 400 of its own (so the server is built with
    // requireHostHeader: false); RFC 9112 §3.2 requires it on HTTP/1.1, so refuse it here, in the contract's shape.
    app.addHook('onRequest', async (request, reply) => {
      if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
        // Like every other malformed request: answered, then the connection is closed.
        reply.header('connection', 'close');
        throw new ValidationFailed('Malformed request: the Host header is required');
      }
    });
  },
  { name: 'error-handler', dependencies: ['config'] },
);
