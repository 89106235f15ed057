// The one credential reader (which credential a request presents, and the CSRF rule that comes with a cookie) and
// `authenticate`, the one verifier any route opts into: signature and claims, CSRF, then the deny-list.
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { TokenInvalid, TokenMissing, TokenRevoked } from '../errors.js';
import type { RevocationState } from '../store/store.js';
import type { VerifiedAccessToken } from './access-tokens.js';
import type { CookiePolicy } from './cookies.js';
import { errorOutcome } from './metrics.js';

/** Who is calling, as established by a verified, non-revoked access token. */
export interface Principal {
  userId: string;
  sessionId: string;
  roles: string[];
  /** RFC 8176 methods of the session (`amr`). */
  amr: string[];
}

/** A credential as the request presents it. */
export interface PresentedCredential {
  token: string;
  /** `header` and `body` are explicit; a `cookie` rides along with every request of the browser. */
  via: 'header' | 'body' | 'cookie';
  /**
   * The CSRF rule, for a cookie only (an unsafe method must then prove the session): absent for an explicit
   * credential, which a cross-site request cannot know, so a caller can skip what the check would need.
   */
  assertCsrf?: (sessionId: string) => void;
}

export interface PresentedCredentials {
  /** The Bearer header, else the access cookie. */
  access?: PresentedCredential;
  /** A refresh token in the body, else the refresh cookie. */
  refresh?: PresentedCredential;
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate(request: FastifyRequest): Promise<void>;
    /** Which credentials the request presents; `refreshToken` is the body's, if the route takes one. */
    credentials(request: FastifyRequest, refreshToken?: string): PresentedCredentials;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/**
 * RFC 6750 §2.1 with the contract's rules: the scheme is case-insensitive; another scheme or a bare value counts
 * as no header; `Bearer` with an empty or malformed value is invalid.
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^(\S+)(?:\s+(.*))?$/.exec(header.trim());
  if (match?.[1]?.toLowerCase() !== 'bearer') return undefined;
  const value = match[2]?.trim() ?? '';
  if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(value)) throw new TokenInvalid();
  return value;
}

export function readCredentials(
  request: FastifyRequest,
  policy: CookiePolicy,
  refreshToken?: string,
): PresentedCredentials {
  const explicit = (token: string, via: 'header' | 'body'): PresentedCredential => ({ token, via });
  const cookie = (token: string): PresentedCredential => ({
    token,
    via: 'cookie',
    assertCsrf: (sessionId) => policy.assertCsrf(request, sessionId),
  });
  const bearer = bearerToken(request);
  const accessCookie = request.cookies[policy.names.access];
  const refreshCookie = request.cookies[policy.names.refresh];
  return {
    access: bearer ? explicit(bearer, 'header') : accessCookie ? cookie(accessCookie) : undefined,
    refresh: refreshToken ? explicit(refreshToken, 'body') : refreshCookie ? cookie(refreshCookie) : undefined,
  };
}

export default fp(
  async (app) => {
    const { accessTokens, denyList, cookiePolicy, metrics } = app;
    // Bound once: the success path is every authenticated request.
    const authenticated = metrics.authentications.labels('ok');

    async function assertNotRevoked({ claims }: VerifiedAccessToken): Promise<void> {
      // One round trip (jti, sid, sub and the epoch); a store that lost the deny-list is rebuilt first, or 503.
      const state = await denyList.state(claims.jti, claims.sid, claims.sub);
      const revoked = revokedBy(state, claims.ver);
      if (revoked) {
        metrics.denyListHits.inc({ kind: revoked });
        throw new TokenRevoked();
      }
    }

    app.decorate('credentials', (request: FastifyRequest, refreshToken?: string) =>
      readCredentials(request, cookiePolicy, refreshToken),
    );
    app.decorateRequest('principal', null);
    app.decorate('authenticate', async (request: FastifyRequest) => {
      try {
        const presented = readCredentials(request, cookiePolicy).access;
        if (!presented) throw new TokenMissing();
        const verified = await accessTokens.verify(presented.token);
        presented.assertCsrf?.(verified.claims.sid);
        await assertNotRevoked(verified);
        const { claims } = verified;
        request.principal = { userId: claims.sub, sessionId: claims.sid, roles: claims.roles, amr: claims.amr };
      } catch (error) {
        // Counted by the code the error handler will answer; the error goes on unchanged.
        metrics.authentications.inc({ outcome: errorOutcome(error) });
        throw error;
      }
      authenticated.inc();
    });
  },
  { name: 'authenticate', dependencies: ['config', 'deny-list', 'access-tokens', 'cookies', 'metrics'] },
);

/** What revoked a token, if anything (its jti, its session, or its user's minimum version), for the metric. */
function revokedBy(state: RevocationState, version: number): 'token' | 'session' | 'user' | undefined {
  if (state.tokenRevoked) return 'token';
  if (state.sessionRevoked) return 'session';
  // A version, not a time: no instance's clock takes part, and a token minted after the change is valid at once.
  if (state.userMinVersion !== null && version < state.userMinVersion) return 'user';
  return undefined;
}

/** The principal of a route behind `authenticate`; a programming error if called elsewhere. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new Error('route is missing the authenticate hook');
  return request.principal;
}
