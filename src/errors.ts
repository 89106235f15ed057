// The error catalogue: one table of the contract's codes (status, public message), from which the factories,
// the ErrorCode type and the error handler's known set are all derived.
import { STATUS_CODES } from 'node:http';
import createError from '@fastify/error';

/**
 * Every code a response may carry. The contract (API.md) names all but INTERNAL_ERROR (any unexpected 500) and
 * REQUEST_TIMEOUT (408: the connection sent its request too slowly; the contract has no code for it).
 * `%s` in a message is filled by the factory's argument.
 */
export const errorTable = {
  VALIDATION_FAILED: { statusCode: 400, message: '%s' },
  PASSWORD_TOO_WEAK: { statusCode: 400, message: '%s' },
  ACTION_TOKEN_INVALID: { statusCode: 400, message: 'The link is invalid, expired or already used' },
  INVALID_CREDENTIALS: { statusCode: 401, message: 'Invalid email or password' },
  TOKEN_MISSING: { statusCode: 401, message: 'No access token was sent' },
  TOKEN_INVALID: { statusCode: 401, message: 'The access token is invalid' },
  TOKEN_EXPIRED: { statusCode: 401, message: 'The access token has expired' },
  TOKEN_REVOKED: { statusCode: 401, message: 'The access token has been revoked' },
  REFRESH_TOKEN_INVALID: { statusCode: 401, message: 'The refresh token is invalid, expired or revoked' },
  MFA_CODE_INVALID: { statusCode: 401, message: 'The code is wrong or was already used' },
  MFA_TOKEN_INVALID: { statusCode: 401, message: 'The second step expired or is unknown; log in again' },
  PASSKEY_INVALID: { statusCode: 401, message: 'The passkey could not be verified' },
  REFRESH_TOKEN_REUSED: {
    statusCode: 401,
    message: 'The refresh token was already used; the session has been revoked',
  },
  CSRF_FAILED: { statusCode: 403, message: 'Missing or mismatched X-CSRF-Token header' },
  FORBIDDEN: { statusCode: 403, message: 'Missing permission: %s' },
  EMAIL_NOT_VERIFIED: { statusCode: 403, message: 'Verify your email address before logging in' },
  NOT_FOUND: { statusCode: 404, message: '%s' },
  REQUEST_TIMEOUT: { statusCode: 408, message: 'The request was not received in time' },
  EMAIL_TAKEN: { statusCode: 409, message: 'This email is already registered' },
  LAST_ADMIN: { statusCode: 409, message: 'The change would leave no admin' },
  PAYLOAD_TOO_LARGE: { statusCode: 413, message: 'The request body exceeds %s bytes' },
  UNSUPPORTED_MEDIA_TYPE: { statusCode: 415, message: 'Request bodies must be application/json' },
  RATE_LIMITED: { statusCode: 429, message: 'Too many requests; retry in %s seconds' },
  INTERNAL_ERROR: { statusCode: 500, message: 'Internal server error (request id %s)' },
  SERVICE_UNAVAILABLE: { statusCode: 503, message: 'A backing service is unavailable; retry shortly' },
} as const satisfies Record<string, { statusCode: number; message: string }>;

export type ErrorCode = keyof typeof errorTable;

/** Every code, in table order (e.g. for an OpenAPI enum). */
export const errorCodes = Object.keys(errorTable) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorTable, value);
}

const define = <C extends ErrorCode>(code: C) =>
  createError(code, errorTable[code].message, errorTable[code].statusCode as (typeof errorTable)[C]['statusCode']);

export const ValidationFailed = define('VALIDATION_FAILED');
export const PasswordTooWeak = define('PASSWORD_TOO_WEAK');
export const ActionTokenInvalid = define('ACTION_TOKEN_INVALID');
export const EmailNotVerified = define('EMAIL_NOT_VERIFIED');
export const InvalidCredentials = define('INVALID_CREDENTIALS');
export const TokenMissing = define('TOKEN_MISSING');
export const TokenInvalid = define('TOKEN_INVALID');
export const TokenExpired = define('TOKEN_EXPIRED');
export const TokenRevoked = define('TOKEN_REVOKED');
export const RefreshTokenInvalid = define('REFRESH_TOKEN_INVALID');
export const RefreshTokenReused = define('REFRESH_TOKEN_REUSED');
export const MfaCodeInvalid = define('MFA_CODE_INVALID');
export const MfaTokenInvalid = define('MFA_TOKEN_INVALID');
export const PasskeyInvalid = define('PASSKEY_INVALID');
export const CsrfFailed = define('CSRF_FAILED');
export const Forbidden = define('FORBIDDEN');
export const NotFound = define('NOT_FOUND');
export const EmailTaken = define('EMAIL_TAKEN');
export const LastAdmin = define('LAST_ADMIN');
export const PayloadTooLarge = define('PAYLOAD_TOO_LARGE');
export const UnsupportedMediaType = define('UNSUPPORTED_MEDIA_TYPE');
export const RateLimited = define('RATE_LIMITED');
export const ServiceUnavailable = define('SERVICE_UNAVAILABLE');

/** The body of every error response. */
export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  error: string;
  message: string;
}

export function errorBody(statusCode: number, code: ErrorCode, message: string): ErrorBody {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message };
}

/**
 * RFC 6750 §3: the `error` parameter of the Bearer challenge, for the codes that reject an access token
 * or a permission. Other 401s carry the bare realm.
 */
export const bearerChallengeError: Partial<Record<ErrorCode, 'invalid_token' | 'insufficient_scope'>> = {
  TOKEN_INVALID: 'invalid_token',
  TOKEN_EXPIRED: 'invalid_token',
  TOKEN_REVOKED: 'invalid_token',
  FORBIDDEN: 'insufficient_scope',
};

/** Thrown by the database and store layers when their server does not answer: the request fails closed. */
export class DependencyUnavailable extends Error {
  constructor(
    readonly dependency: 'postgres' | 'redis',
    cause: unknown,
  ) {
    super(`${dependency} is unavailable`, { cause });
    this.name = 'DependencyUnavailable';
  }
}

/** SERVICE_UNAVAILABLE for work this instance has no room for now (not a backing service down), with Retry-After. */
export function serviceBusy(retryAfterSeconds: number): Error & { retryAfterSeconds: number } {
  return Object.assign(new ServiceUnavailable(), { retryAfterSeconds });
}

/** RATE_LIMITED carrying the seconds for its Retry-After header. */
export function rateLimited(retryAfterSeconds: number): Error & { retryAfterSeconds: number } {
  return Object.assign(new RateLimited(String(retryAfterSeconds)), { retryAfterSeconds });
}
