// Schemas shared by every module: the error body, ids, pagination, and the helpers that describe responses.
import { type Static, type TSchema, type TUnsafe, Type } from '@sinclair/typebox';
import { type ErrorCode, errorCodes } from '../errors.js';

/**
 * A reference to a named schema (one with an `$id`, registered once by the schemas plugin): validation and
 * serialization resolve it, and the OpenAPI document shows it as `#/components/schemas/<$id>`.
 */
export function ref<T extends TSchema>(schema: T): TUnsafe<Static<T>> {
  if (!schema.$id) throw new Error('ref() needs a schema with an $id');
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id));
}

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer({ description: 'The HTTP status, repeated' }),
    code: Type.Unsafe<ErrorCode>({
      type: 'string',
      enum: errorCodes,
      description: 'Stable machine-readable code, e.g. TOKEN_EXPIRED',
    }),
    error: Type.String({ description: 'The HTTP reason phrase' }),
    message: Type.String({ description: 'For people; may change' }),
  },
  { $id: 'Error', description: 'Every error response has this shape' },
);

const wwwAuthenticate = Type.String({
  description: 'Bearer realm="<issuer>", plus error="invalid_token" when a token was sent but rejected (RFC 6750)',
});
const retryAfter = Type.Integer({ description: 'Seconds to wait before trying again' });

const errorDescriptions: Record<number, string> = {
  400: 'VALIDATION_FAILED: the body, query or path parameters fail their schema, or the JSON is malformed',
  401: 'Not authenticated: TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED or TOKEN_REVOKED',
  403: 'CSRF_FAILED (a cookie-authenticated request without a matching X-CSRF-Token) or FORBIDDEN (a missing permission)',
  404: 'NOT_FOUND',
  409: 'Conflict with the current state',
  413: 'PAYLOAD_TOO_LARGE: the body is over 16 KiB',
  415: 'UNSUPPORTED_MEDIA_TYPE: the body is not application/json',
  429: 'RATE_LIMITED: too many requests; retry after Retry-After seconds',
  503: 'SERVICE_UNAVAILABLE: Postgres or Redis does not answer (the service fails closed)',
};

/** Response headers that go with an error status. */
function errorHeaders(status: number): Record<string, TSchema> | undefined {
  if (status === 401) return { 'WWW-Authenticate': wwwAuthenticate };
  if (status === 403) {
    return { 'WWW-Authenticate': { ...wwwAuthenticate, description: 'With FORBIDDEN: error="insufficient_scope"' } };
  }
  if (status === 429) return { 'Retry-After': retryAfter };
  return undefined;
}

/** A JSON response: its description, headers and body schema, in the form both Fastify and the document read. */
export function jsonResponse<T extends TSchema>(description: string, schema: T, headers?: Record<string, TSchema>) {
  return { description, ...(headers ? { headers } : {}), content: { 'application/json': { schema } } };
}

/** A response without a body (204). */
export function noContent(description: string, headers?: Record<string, TSchema>) {
  return Type.Null({ description, ...(headers ? { headers } : {}) });
}

/** One error status, in the one error shape, with the status's usual description unless given. */
export function errorResponse(status: number, description?: string) {
  return jsonResponse(description ?? errorDescriptions[status] ?? 'Error', ref(ErrorSchema), errorHeaders(status));
}

/** Responses for the listed error statuses, all of the one error shape. */
export function errorResponses(...statuses: number[]): Record<number, ReturnType<typeof errorResponse>> {
  return Object.fromEntries(statuses.map((status) => [status, errorResponse(status)]));
}

/** Set on responses that may set or clear the session cookies. */
export const setCookieHeader = (description: string) => ({ 'Set-Cookie': Type.String({ description }) });

/** The CSRF header of cookie-authenticated unsafe requests, as an optional header parameter. */
export const CsrfHeadersSchema = Type.Object({
  'X-CSRF-Token': Type.Optional(
    Type.String({
      description:
        'Required when the request is authenticated by cookie (no Authorization header): the csrf cookie value',
    }),
  ),
});

// A plain UUID, either case: ajv's `uuid` format also takes a `urn:uuid:` prefix, which Postgres would refuse.
export const UuidSchema = Type.String({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  description: 'UUID',
});

export const IdParamsSchema = Type.Object({ id: UuidSchema });
export type IdParams = Static<typeof IdParamsSchema>;

// `limit` may be omitted (the document says so), but validation fills in its default, so handlers always see it.
export const PageQuerySchema = Type.Unsafe<{ limit: number; cursor?: string }>(
  Type.Object(
    {
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Page size' })),
      cursor: Type.Optional(
        Type.String({ minLength: 1, maxLength: 200, description: 'nextCursor of the previous page' }),
      ),
    },
    { additionalProperties: false },
  ),
);
export type PageQuery = Static<typeof PageQuerySchema>;

/** OpenAPI security of the authenticated routes: a Bearer access token, or the access cookie. */
export const bearerOrCookie: { [scheme: string]: string[] }[] = [{ bearerAuth: [] }, { cookieAuth: [] }];

/** OpenAPI security of the public routes: none. */
export const publicRoute: { [scheme: string]: string[] }[] = [];
