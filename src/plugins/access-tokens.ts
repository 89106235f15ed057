// Decorates `accessTokens`: signs access tokens with the active key, and the one verifier of their signature and claims.
import { createSigner, createVerifier, type TokenError } from 'fast-jwt';
import fp from 'fastify-plugin';
import { TokenExpired, TokenInvalid } from '../errors.js';
import type { SigningKey } from '../keys/key-ring.js';
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

export default fp(
  async (app) => {
    const { keys, clock } = app;
    const { issuer, audience, accessTokenTtl, clockTolerance, jwtAlgorithm } = app.config;
    // One signer per key, made when the key first signs: rotation switches keys without a restart.
    const signers = new Map<string, (claims: AccessTokenClaims) => string>();
    const signerFor = (key: SigningKey) => {
      let signer = signers.get(key.kid);
      if (!signer) {
        signer = createSigner({
          key: key.privateKeyPem,
          algorithm: jwtAlgorithm,
          kid: key.kid,
          header: { alg: jwtAlgorithm, typ: ACCESS_TOKEN_TYPE },
        });
        signers.set(key.kid, signer);
      }
      return signer;
    };

    const verifySignature = createVerifier({
      // Only keys of our own set, chosen by kid: never one the token names (jku, x5u, embedded jwk).
      key: async (decoded: { header: { kid?: unknown } }) => {
        const key = keys.find(decoded.header.kid);
        if (!key) throw new Error('unknown kid');
        return key.publicKeyPem;
      },
      algorithms: [jwtAlgorithm],
      allowedIss: issuer,
      allowedAud: audience,
      checkTyp: ACCESS_TOKEN_TYPE,
      requiredClaims: REQUIRED_CLAIMS,
      allowedCritHeaders: [],
      // Time claims are checked below against the injectable clock, for precise codes.
      ignoreExpiration: true,
      ignoreNotBefore: true,
      cache: 1_000,
    });

    const toleranceMs = clockTolerance * 1000;

    const accessTokens: AccessTokens = {
      issue({ userId, sessionId, roles, tokenVersion }) {
        const nowMs = clock.now();
        const iat = Math.floor(nowMs / 1000);
        const exp = iat + accessTokenTtl;
        const jti = uuidv7(nowMs);
        const claims: AccessTokenClaims = {
          iss: issuer,
          aud: audience,
          sub: userId,
          iat,
          exp,
          jti,
          sid: sessionId,
          roles,
          ver: tokenVersion,
        };
        return { token: signerFor(keys.active)(claims), expiresIn: accessTokenTtl };
      },

      async verify(token, options = {}) {
        if (!COMPACT_JWS.test(token)) throw new TokenInvalid();
        let claims: AccessTokenClaims;
        try {
          claims = (await verifySignature(token)) as AccessTokenClaims;
        } catch (error) {
          app.log.debug({ reason: (error as TokenError).code ?? (error as Error).message }, 'access token rejected');
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
