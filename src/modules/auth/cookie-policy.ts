// The one cookie policy: names, attributes and lifetimes of the access, refresh and CSRF cookies.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CsrfFailed } from '../../errors.js';
import { safeEqual } from '../../lib/ids.js';

export interface CookieNames {
  access: string;
  refresh: string;
  csrf: string;
}

/** `__Host-`/`__Secure-` prefixes need Secure, so plain-HTTP development drops them. */
export function cookieNames(secure: boolean): CookieNames {
  return secure
    ? { access: '__Host-access_token', refresh: '__Secure-refresh_token', csrf: '__Host-csrf_token' }
    : { access: 'access_token', refresh: 'refresh_token', csrf: 'csrf_token' };
}

export interface SessionCookies {
  accessToken: string;
  accessMaxAge: number;
  refreshToken: string;
  refreshMaxAge: number;
  csrfToken: string;
}

const REFRESH_PATH = '/auth';

export function setSessionCookies(reply: FastifyReply, secure: boolean, cookies: SessionCookies): void {
  const names = cookieNames(secure);
  const base = { secure, sameSite: 'strict' as const };
  reply.setCookie(names.access, cookies.accessToken, {
    ...base,
    httpOnly: true,
    path: '/',
    maxAge: cookies.accessMaxAge,
  });
  reply.setCookie(names.refresh, cookies.refreshToken, {
    ...base,
    httpOnly: true,
    path: REFRESH_PATH,
    maxAge: cookies.refreshMaxAge,
  });
  // Readable by scripts on purpose: the double-submit value the client echoes in X-CSRF-Token.
  reply.setCookie(names.csrf, cookies.csrfToken, {
    ...base,
    httpOnly: false,
    path: '/',
    maxAge: cookies.refreshMaxAge,
  });
}

export function clearSessionCookies(reply: FastifyReply, secure: boolean): void {
  const names = cookieNames(secure);
  const base = { secure, sameSite: 'strict' as const };
  reply.clearCookie(names.access, { ...base, httpOnly: true, path: '/' });
  reply.clearCookie(names.refresh, { ...base, httpOnly: true, path: REFRESH_PATH });
  reply.clearCookie(names.csrf, { ...base, path: '/' });
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Double-submit CSRF check for requests whose credential is a cookie: an unsafe method must echo the csrf cookie
 * in X-CSRF-Token. SameSite=Strict already blocks most cross-site requests; this covers the rest.
 */
export function assertCsrf(request: FastifyRequest, secure: boolean): void {
  if (!UNSAFE_METHODS.has(request.method)) return;
  const expected = request.cookies[cookieNames(secure).csrf];
  const sent = request.headers['x-csrf-token'];
  if (!expected || typeof sent !== 'string' || !safeEqual(sent, expected)) throw new CsrfFailed();
}
