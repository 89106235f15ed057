// Decorates `accessTokens`: signs access tokens with the active key, and the one verifier of their signature and claims,
// both through @fastify/jwt (registered here, keys chosen by kid from our key ring).
import fastifyJwt from '@fastify/jwt';
import fp from 'fastify-plugin';
import { TokenExpired, TokenInvalid } from '../errors.js';
import { uuidv7, uuidv7Time } from '../lib/ids.js';

/** The claims of our access tokens (RFC 9068 profile). */
export interface AccessTokenClaims {
  iss: string;
  aud: string;
  sub: string;
  iat: number;
  exp: number;
  nbf?: number;
  jti: string;
  sid: string;
  roles: string[];
  /** The user's token version when it was minted: lower than the deny-listed minimum means revoked. */
  ver: number;
}

export interface VerifiedAccessToken {
  claims: AccessTokenClaims;
  /** Issue time to the millisecond (from the UUIDv7 jti). */
  issuedAtMs: number;
}

export interface IssuedAccessToken {
  token: string;
  /** Seconds. */
  expiresIn: number;
}

export interface AccessTokens {
  issue(subject: { userId: string; sessionId: string; roles: string[]; tokenVersion: number }): IssuedAccessToken;
  /** Signature, header and claims; throws TOKEN_INVALID or TOKEN_EXPIRED. The deny-list is checked by the caller. */
  verify(token: string, options?: { ignoreExpiration?: boolean }): Promise<VerifiedAccessToken>;
}

declare module 'fastify' {
  interface FastifyInstance {
    accessTokens: AccessTokens;
  }
}

export const ACCESS_TOKEN_TYPE = 'at+jwt';
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid', 'roles', 'ver'];
// A compact JWS: three base64url segments. Anything else is rejected before any parsing.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** What the plugin's verifier hands a key resolver (fast-jwt's decoded token); anything else finds no key. */
interface DecodedToken {
  header?: { kid?: unknown; alg?: unknown };
}

export default fp(
  async (app) => {
    const { keys, clock } = app;
    const { issuer, audience, accessTokenTtl, jwtAlgorithm } = app.config;

    // Only keys of our own set, chosen by kid, each with its one algorithm: never a key the token names (jku, x5u,
    // embedded jwk), never another algorithm for a known key. Called with anything but a decoded token (the
    // plugin's request.jwtVerify/reply.jwtSign forms, which we do not use), it finds no kid and refuses.
    const keyOf = (decoded: DecodedToken) => {
      const key = keys.find(decoded?.header?.kid);
      if (!key) throw new Error('unknown kid');
      if (decoded.header?.alg !== key.alg) throw new Error(`alg is not ${key.alg}, the algorithm of this key`);
      return key;
    };

    await app.register(fastifyJwt, {
      secret: {
        public: async (decoded: DecodedToken) => keyOf(decoded).publicKeyPem,
        // `issue` passes the active key per token (so rotation needs no restart); a signature through any other
        // path must name one of our kids.
        private: async (decoded: DecodedToken) => keyOf(decoded).privateKeyPem,
      },
      sign: {
        algorithm: jwtAlgorithm,
        iss: issuer,
        aud: audience,
        expiresIn: accessTokenTtl,
        header: { alg: jwtAlgorithm, typ: ACCESS_TOKEN_TYPE },
      },
      verify: {
        algorithms: [jwtAlgorithm],
        allowedIss: issuer,
        allowedAud: audience,
        // `at+jwt` and `application/at+jwt` (the plugin drops the prefix, case-insensitively).
        checkTyp: ACCESS_TOKEN_TYPE,
        requiredClaims: REQUIRED_CLAIMS,
        // No extension is understood, so any `crit` is rejected.
        allowedCritHeaders: [],
        // Time claims are checked below against the injectable clock (with CLOCK_TOLERANCE), for precise codes:
        // the plugin's clock is a fixed timestamp or Date.now().
        ignoreExpiration: true,
        ignoreNotBefore: true,
        // Verified signatures (not time checks) by token; rejections are not cached.
        cache: 1_000,
        errorCacheTTL: -1,
      },
    });

    const toleranceMs = app.config.clockTolerance * 1000;
    // With a key resolver the plugin's verifier answers with a promise (its type says a value).
    const verifySignature = (token: string) => app.jwt.verify(token) as unknown as Promise<AccessTokenClaims>;

    const accessTokens: AccessTokens = {
      issue({ userId, sessionId, roles, tokenVersion }) {
        const nowMs = clock.now();
        const iat = Math.floor(nowMs / 1000);
        const key = keys.active;
        // iss, aud and exp (iat + ACCESS_TOKEN_TTL) come from the sign options.
        const token = app.jwt.sign(
          { sub: userId, iat, jti: uuidv7(nowMs), sid: sessionId, roles, ver: tokenVersion },
          {
            key: key.privateKeyPem,
            kid: key.kid,
            algorithm: key.alg,
            header: { alg: key.alg, typ: ACCESS_TOKEN_TYPE },
          },
        );
        return { token, expiresIn: accessTokenTtl };
      },

      async verify(token, options = {}) {
        if (!COMPACT_JWS.test(token)) throw new TokenInvalid();
        let claims: AccessTokenClaims;
        try {
          claims = await verifySignature(token);
        } catch (error) {
          const reason = (error as { code?: string }).code ?? (error as Error).message;
          app.log.debug({ reason }, 'access token rejected');
          throw new TokenInvalid();
        }
        const issuedAtMs = uuidv7Time(claims.jti);
        if (!hasValidShape(claims) || issuedAtMs === undefined) throw new TokenInvalid();
        const nowMs = clock.now();
        if (claims.iat * 1000 > nowMs + toleranceMs) throw new TokenInvalid();
        if (claims.nbf !== undefined && claims.nbf * 1000 > nowMs + toleranceMs) throw new TokenInvalid();
        if (!options.ignoreExpiration && claims.exp * 1000 <= nowMs - toleranceMs) throw new TokenExpired();
        return { claims, issuedAtMs };
      },
    };
    app.decorate('accessTokens', accessTokens);
  },
  { name: 'access-tokens', dependencies: ['config', 'keys'] },
);

function hasValidShape(claims: AccessTokenClaims): boolean {
  return (
    typeof claims.sub === 'string' &&
    typeof claims.sid === 'string' &&
    Number.isFinite(claims.iat) &&
    Number.isFinite(claims.exp) &&
    (claims.nbf === undefined || Number.isFinite(claims.nbf)) &&
    Number.isSafeInteger(claims.ver) &&
    claims.ver >= 0 &&
    Array.isArray(claims.roles) &&
    claims.roles.every((role) => typeof role === 'string')
  );
}
