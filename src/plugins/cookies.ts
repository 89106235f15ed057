// Decorates `cookiePolicy`: the one cookie policy, built once from config: names, attributes, lifetimes, and the CSRF
// rule for requests whose credential is a cookie.
import { createHmac, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CsrfFailed } from '../errors.js';
import { safeEqual } from '../lib/ids.js';

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
  sessionId: string;
  accessToken: string;
  accessMaxAge: number;
  refreshToken: string;
  refreshMaxAge: number;
}

export interface CookiePolicy {
  readonly names: CookieNames;
  /** Sets the three cookies; returns the csrf value (also for a frontend that cannot read the cookie). */
  setSession(reply: FastifyReply, cookies: SessionCookies): string;
  clearSession(reply: FastifyReply): void;
  /**
   * The double-submit rule for a request whose credential is a cookie of `sessionId`: an unsafe method must echo
   * the csrf cookie in X-CSRF-Token, and that value must have been made by us for this session.
   */
  assertCsrf(request: FastifyRequest, sessionId: string): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    cookiePolicy: CookiePolicy;
  }
}

const REFRESH_PATH = '/auth';
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function cookiePolicy(secure: boolean, csrfKey: Buffer): CookiePolicy {
  const names = cookieNames(secure);
  const base = { secure, sameSite: 'strict' as const };
  // `<nonce>.<HMAC(session id, nonce)>`: fresh at every issue, and worthless for any other session, so a value
  // planted by an attacker (a sibling subdomain can set cookies) never matches.
  const mac = (sessionId: string, nonce: string) =>
    createHmac('sha256', csrfKey).update(`${sessionId}.${nonce}`).digest('base64url');
  const csrfValue = (sessionId: string) => {
    const nonce = randomBytes(16).toString('base64url');
    return `${nonce}.${mac(sessionId, nonce)}`;
  };
  const madeFor = (value: string, sessionId: string) => {
    const [nonce, tag, extra] = value.split('.');
    return extra === undefined && !!nonce && !!tag && safeEqual(tag, mac(sessionId, nonce));
  };

  return {
    names,
    setSession(reply, cookies) {
      const csrf = csrfValue(cookies.sessionId);
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
      reply.setCookie(names.csrf, csrf, { ...base, httpOnly: false, path: '/', maxAge: cookies.refreshMaxAge });
      return csrf;
    },
    clearSession(reply) {
      reply.clearCookie(names.access, { ...base, httpOnly: true, path: '/' });
      reply.clearCookie(names.refresh, { ...base, httpOnly: true, path: REFRESH_PATH });
      reply.clearCookie(names.csrf, { ...base, path: '/' });
    },
    assertCsrf(request, sessionId) {
      if (!UNSAFE_METHODS.has(request.method)) return;
      const expected = request.cookies[names.csrf];
      const sent = request.headers['x-csrf-token'];
      if (!expected || typeof sent !== 'string' || !safeEqual(sent, expected) || !madeFor(sent, sessionId)) {
        throw new CsrfFailed();
      }
    },
  };
}

export default fp(
  async (app) => {
    app.decorate('cookiePolicy', cookiePolicy(app.config.cookieSecure, app.secrets.csrf));
  },
  { name: 'cookies', dependencies: ['config', 'secrets', 'security'] },
);
