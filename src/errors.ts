// The error catalogue: every error the contract names, with its stable code and status.
import { STATUS_CODES } from 'node:http';
import createError from '@fastify/error';

const define = (code: string, statusCode: number, message: string) => createError(code, message, statusCode);

export const ValidationFailed = define('VALIDATION_FAILED', 400, '%s');
export const PasswordTooWeak = define('PASSWORD_TOO_WEAK', 400, '%s');
export const InvalidCredentials = define('INVALID_CREDENTIALS', 401, 'Invalid email or password');
export const TokenMissing = define('TOKEN_MISSING', 401, 'No access token was sent');
export const TokenInvalid = define('TOKEN_INVALID', 401, 'The access token is invalid');
export const TokenExpired = define('TOKEN_EXPIRED', 401, 'The access token has expired');
export const TokenRevoked = define('TOKEN_REVOKED', 401, 'The access token has been revoked');
export const RefreshTokenInvalid = define(
  'REFRESH_TOKEN_INVALID',
  401,
  'The refresh token is invalid, expired or revoked',
);
export const RefreshTokenReused = define(
  'REFRESH_TOKEN_REUSED',
  401,
  'The refresh token was already used; the session has been revoked',
);
export const CsrfFailed = define('CSRF_FAILED', 403, 'Missing or mismatched X-CSRF-Token header');
export const Forbidden = define('FORBIDDEN', 403, 'Missing permission: %s');
export const NotFound = define('NOT_FOUND', 404, '%s');
export const EmailTaken = define('EMAIL_TAKEN', 409, 'This email is already registered');
export const LastAdmin = define('LAST_ADMIN', 409, 'The change would leave no admin');
export const PayloadTooLarge = define('PAYLOAD_TOO_LARGE', 413, 'The request body exceeds %s bytes');
export const UnsupportedMediaType = define('UNSUPPORTED_MEDIA_TYPE', 415, 'Request bodies must be application/json');
export const RateLimited = define('RATE_LIMITED', 429, 'Too many requests; retry in %s seconds');

export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'PASSWORD_TOO_WEAK'
  | 'INVALID_CREDENTIALS'
  | 'TOKEN_MISSING'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_REVOKED'
  | 'REFRESH_TOKEN_INVALID'
  | 'REFRESH_TOKEN_REUSED'
  | 'CSRF_FAILED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'EMAIL_TAKEN'
  | 'LAST_ADMIN'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RATE_LIMITED'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_ERROR';

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

/** RATE_LIMITED carrying the seconds for its Retry-After header. */
export function rateLimited(retryAfterSeconds: number): Error & { retryAfterSeconds: number } {
  return Object.assign(new RateLimited(String(retryAfterSeconds)), { retryAfterSeconds });
}
