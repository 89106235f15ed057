// Decorates `authenticate`, the one verifier any route opts into: token from Bearer header or access cookie,
// signature and claims, CSRF for cookie requests, then the deny-list in one round trip.
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { TokenInvalid, TokenMissing, TokenRevoked } from '../errors.js';
import { assertCsrf, cookieNames } from '../modules/auth/cookie-policy.js';
import type { VerifiedAccessToken } from './access-tokens.js';

/** Who is calling, as established by a verified, non-revoked access token. */
export interface Principal {
  userId: string;
  sessionId: string;
  roles: string[];
  tokenId: string;
  /** Epoch ms. */
  expiresAt: number;
  via: 'header' | 'cookie';
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate(request: FastifyRequest): Promise<void>;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export interface PresentedToken {
  token: string;
  via: 'header' | 'cookie';
}

/**
 * RFC 6750 §2.1 with the contract's rules: the scheme is case-insensitive; another scheme or a bare value counts
 * as no header; `Bearer` with an empty or malformed value is invalid. Bearer wins over the cookie.
 */
export function presentedAccessToken(request: FastifyRequest, cookieSecure: boolean): PresentedToken | undefined {
  const header = request.headers.authorization;
  if (header) {
    const match = /^(\S+)(?:\s+(.*))?$/.exec(header.trim());
    if (match?.[1]?.toLowerCase() === 'bearer') {
      const value = match[2]?.trim() ?? '';
      if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(value)) throw new TokenInvalid();
      return { token: value, via: 'header' };
    }
  }
  const cookie = request.cookies[cookieNames(cookieSecure).access];
  return cookie ? { token: cookie, via: 'cookie' } : undefined;
}

export default fp(
  async (app) => {
    const { accessTokens, store, config } = app;

    async function assertNotRevoked({ claims, issuedAtMs }: VerifiedAccessToken): Promise<void> {
      const state = await store.revocationState(claims.jti, claims.sid, claims.sub);
      if (state.tokenRevoked || state.sessionRevoked) throw new TokenRevoked();
      // Millisecond precision: a token from the same second but after the change stays valid.
      if (state.userNotBefore !== null && issuedAtMs < state.userNotBefore) throw new TokenRevoked();
    }

    app.decorateRequest('principal', null);
    app.decorate('authenticate', async (request: FastifyRequest) => {
      const presented = presentedAccessToken(request, config.cookieSecure);
      if (!presented) throw new TokenMissing();
      const verified = await accessTokens.verify(presented.token);
      if (presented.via === 'cookie') assertCsrf(request, config.cookieSecure);
      await assertNotRevoked(verified);
      const { claims } = verified;
      request.principal = {
        userId: claims.sub,
        sessionId: claims.sid,
        roles: claims.roles,
        tokenId: claims.jti,
        expiresAt: claims.exp * 1000,
        via: presented.via,
      };
    });
  },
  { name: 'authenticate', dependencies: ['config', 'store', 'access-tokens'] },
);

/** The principal of a route behind `authenticate`; a programming error if called elsewhere. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new Error('route is missing the authenticate hook');
  return request.principal;
}
