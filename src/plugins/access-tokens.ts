// Decorates `accessTokens`: signs access tokens with the active key, and the one verifier of their signature and claims,
// both through @fastify/jwt (one instance per key of our ring, chosen by kid).
import fastifyJwt, { type JWT } from '@fastify/jwt';
import Fastify, { type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { TokenExpired, TokenInvalid } from '../errors.js';
import type { KeyRing, SigningKey } from '../keys/key-ring.js';
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
  /** RFC 8176 authentication methods of the session: `pwd`; `otp` and `mfa` after TOTP; `pop` and `mfa` (passkey). */
  amr: string[];
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
  issue(subject: {
    userId: string;
    sessionId: string;
    roles: string[];
    tokenVersion: number;
    amr: string[];
  }): IssuedAccessToken;
  /** Signature, header and claims; throws TOKEN_INVALID or TOKEN_EXPIRED. The deny-list is checked by the caller. */
  verify(token: string, options?: { ignoreExpiration?: boolean }): Promise<VerifiedAccessToken>;
}

declare module 'fastify' {
  interface FastifyInstance {
    accessTokens: AccessTokens;
  }
}

export const ACCESS_TOKEN_TYPE = 'at+jwt';
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid', 'roles', 'ver', 'amr'];
// A compact JWS: three base64url segments. Anything else is rejected before any parsing.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const HEADERS_REMEMBERED = 64;

export default fp(
  async (app) => {
    const { keys, clock } = app;
    const { issuer, audience, accessTokenTtl } = app.config;

    // One @fastify/jwt per key of our ring, each with that key's own static `{ private, public }` and its options
    // pinned to that key (its one algorithm, its kid): the plugin parses each key once and signs synchronously, and
    // each has its own verified-token cache. Each lives on a bare Fastify instance of its own that holds no route and
    // never listens, so the plugin's request.jwtVerify / reply.jwtSign (which would read the credential themselves,
    // around the credential reader, CSRF and the deny-list) are reachable from nowhere: `authenticate` stays the one
    // verifier. Bare instances, not scopes of the app, because a reloaded ring brings keys after the app has booted.
    const byKid = new Map<string, { holder: FastifyInstance; jwt: JWT }>();
    const jwtOf = async (key: SigningKey): Promise<JWT> => {
      const holder = Fastify({ logger: false });
      await holder.register(fastifyJwt, {
        secret: { private: key.privateKeyPem, public: key.publicKeyPem },
        sign: {
          algorithm: key.alg,
          kid: key.kid,
          header: { alg: key.alg, typ: ACCESS_TOKEN_TYPE },
          iss: issuer,
          aud: audience,
          // From the payload's iat, which is the injectable clock's.
          expiresIn: accessTokenTtl,
        },
        verify: {
          algorithms: [key.alg],
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
          // Verified signatures and claims (not time checks) by token; rejections are not cached.
          cache: 1_000,
          errorCacheTTL: -1,
        },
      });
      await holder.ready();
      byKid.set(key.kid, { holder, jwt: holder.jwt });
      return holder.jwt;
    };
    /** Readies a signer for every key of `ring`, and forgets those of keys in neither it nor the current ring. */
    const prepare = async (ring: KeyRing) => {
      for (const key of ring.keys) if (!byKid.has(key.kid)) await jwtOf(key);
      for (const [kid, { holder }] of byKid) {
        if (!ring.find(kid) && !keys.find(kid)) {
          byKid.delete(kid);
          await holder.close();
        }
      }
    };
    await prepare(keys.current);
    // Before a reloaded ring takes over, so the new active key can sign at once.
    keys.beforeReplace(prepare);
    app.addHook('onClose', async () => {
      for (const { holder } of byKid.values()) await holder.close();
    });

    // Every token a key signs has the same header segment: which kid a segment names is remembered (a pure function
    // of the segment, bounded; the key's instance still verifies the whole header), sparing a parse per request.
    const kidByHeader = new Map<string, string>();
    /**
     * The key's plugin instance by the token's kid: only keys of the current ring, never one the token names, so a
     * key removed from KEYS_DIR stops verifying at the next reload.
     */
    const jwtFor = (token: string): JWT | undefined => {
      const segment = token.slice(0, token.indexOf('.'));
      let kid: unknown = kidByHeader.get(segment);
      if (kid === undefined) {
        try {
          kid = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))?.kid;
        } catch {
          return undefined;
        }
        if (typeof kid !== 'string') return undefined;
        if (keys.find(kid) && kidByHeader.size < HEADERS_REMEMBERED) kidByHeader.set(segment, kid);
      }
      return keys.find(kid) ? byKid.get(kid as string)?.jwt : undefined;
    };

    const toleranceMs = app.config.clockTolerance * 1000;

    const accessTokens: AccessTokens = {
      issue({ userId, sessionId, roles, tokenVersion, amr }) {
        const nowMs = clock.now();
        const iat = Math.floor(nowMs / 1000);
        const jwt = byKid.get(keys.active.kid)?.jwt as JWT;
        // iss, aud, exp (iat + ACCESS_TOKEN_TTL) and the header (alg, typ, kid) come from that key's sign options.
        const token = jwt.sign({
          sub: userId,
          iat,
          jti: uuidv7(nowMs),
          sid: sessionId,
          roles,
          ver: tokenVersion,
          amr,
        });
        return { token, expiresIn: accessTokenTtl };
      },

      async verify(token, options = {}) {
        if (!COMPACT_JWS.test(token)) throw new TokenInvalid();
        let claims: AccessTokenClaims;
        try {
          const jwt = jwtFor(token);
          if (!jwt) throw new Error('unknown kid');
          claims = jwt.verify<AccessTokenClaims>(token);
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
    claims.roles.every((role) => typeof role === 'string') &&
    Array.isArray(claims.amr) &&
    claims.amr.every((method) => typeof method === 'string')
  );
}
