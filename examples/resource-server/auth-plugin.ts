// A Fastify plugin for resource servers of the auth service: access tokens verified offline through the JWKS (issuer,
// audience, typ and algorithm pinned), roles checked per route, and the revocation feed polled into memory so a
// logout, a refresh-token reuse or a role change reaches this service within one poll. Depends only on fastify,
// fastify-plugin and jose: copy this one file.
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from 'jose';

export interface RevocationFeedOptions {
  /** `<issuer>/auth/revocations`. */
  url: string | URL;
  /** The auth service's REVOCATION_FEED_TOKEN. */
  token: string;
  /** Milliseconds between polls; a revocation reaches this service at most this long after the feed shows it. */
  pollIntervalMs: number;
  /**
   * When no poll has succeeded for this long (milliseconds), every authenticated request is refused with 503: a
   * revocation might be waiting unseen, and we fail closed. Default: 3 poll intervals, at least 30 s.
   */
  maxStalenessMs?: number;
  /** Timeout of one feed request (milliseconds); default 10 s. */
  requestTimeoutMs?: number;
}

export interface AuthPluginOptions {
  /** The auth service's ISSUER: the exact `iss` of its tokens. */
  issuer: string;
  /** The `aud` this service accepts (the auth service's AUDIENCE; by default its issuer). */
  audience: string;
  /** `<issuer>/.well-known/jwks.json`. */
  jwksUrl: string | URL;
  /** The auth service's JWT_ALG; only these algorithms are accepted. Default `['RS256']`. */
  algorithms?: string[];
  /** Seconds of clock skew tolerated on `exp`, `nbf` and `iat`; default 30 (the auth service's CLOCK_TOLERANCE). */
  clockToleranceSec?: number;
  /**
   * Minimum milliseconds between two JWKS fetches, however many unknown kids arrive (jose's cooldown); default 30 s.
   * A token signed by a key we have not seen triggers a refetch once this has passed since the last fetch.
   */
  jwksCooldownMs?: number;
  /** How long a fetched JWKS is used before it is fetched again even with no unknown kid; default 10 min. */
  jwksCacheMaxAgeMs?: number;
  /** Without it, a revoked token stays valid here until it expires (up to the auth service's ACCESS_TOKEN_TTL). */
  revocationFeed?: RevocationFeedOptions;
}

/** The verified claims of an access token of the auth service. */
export interface AccessClaims extends JWTPayload {
  iss: string;
  sub: string;
  iat: number;
  exp: number;
  jti: string;
  sid: string;
  roles: string[];
  ver: number;
  /** RFC 8176: `["pwd"]`, `["pwd","otp","mfa"]` after TOTP or a recovery code, `["pop","mfa"]` after a passkey. */
  amr: string[];
}

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: 401 unless the request carries a valid, unrevoked Bearer access token; sets `accessClaims`. */
    verifyAccessToken: preHandlerAsyncHookHandler;
    /** preHandler: `verifyAccessToken`, then 403 unless the token's roles include `role`. */
    requireRole(role: string): preHandlerAsyncHookHandler;
    /**
     * preHandler: `verifyAccessToken`, then 401 `insufficient_user_authentication` (RFC 9470) unless the session was
     * opened with a second factor (`mfa` in `amr`): the client should send the user through a stronger login.
     */
    requireMfa(): preHandlerAsyncHookHandler;
    /** The in-memory copy of the revocation feed. */
    revocationList: RevocationList;
  }
  interface FastifyRequest {
    accessClaims: AccessClaims | null;
  }
}

type FeedItem = {
  type: 'jti' | 'sid' | 'sub';
  value: string;
  notBefore?: string;
  minVersion?: number;
  expiresAt: string;
};

const FEED_PAGE = 1000;
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid', 'roles', 'ver', 'amr'];

/** The issue time in ms of a UUIDv7 (the auth service's jti), or undefined for another form. */
function uuidv7Time(jti: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(jti)) return undefined;
  return Number.parseInt(jti.slice(0, 8) + jti.slice(9, 13), 16);
}

/** Live revocations by jti, sid and sub, each kept until its `expiresAt`. */
export class RevocationList {
  readonly #jti = new Map<string, number>();
  readonly #sid = new Map<string, number>();
  readonly #sub = new Map<string, { minVersion?: number; notBefore?: number; expiresAt: number }>();
  cursor = '0';
  /** Epoch ms of the last successful poll; 0 before the first. */
  lastSuccess = 0;

  constructor(private readonly now: () => number = Date.now) {}

  apply(item: FeedItem): void {
    const expiresAt = Date.parse(item.expiresAt);
    if (Number.isNaN(expiresAt)) return;
    if (item.type === 'jti' || item.type === 'sid') {
      const map = item.type === 'jti' ? this.#jti : this.#sid;
      map.set(item.value, Math.max(expiresAt, map.get(item.value) ?? 0));
      return;
    }
    // Several changes of one user: the highest version (and latest time) rejects every token an older one did.
    const previous = this.#sub.get(item.value);
    const notBefore = item.notBefore === undefined ? undefined : Date.parse(item.notBefore);
    const maxOf = (a: number | undefined, b: number | undefined) =>
      a === undefined ? b : b === undefined ? a : Math.max(a, b);
    this.#sub.set(item.value, {
      minVersion: maxOf(previous?.minVersion, item.minVersion),
      notBefore: maxOf(previous?.notBefore, Number.isNaN(notBefore) ? undefined : notBefore),
      expiresAt: Math.max(expiresAt, previous?.expiresAt ?? 0),
    });
  }

  /** Drops entries past their expiresAt: the tokens they revoke have expired by then. */
  prune(): void {
    const now = this.now();
    for (const map of [this.#jti, this.#sid]) {
      for (const [key, expiresAt] of map) if (expiresAt <= now) map.delete(key);
    }
    for (const [key, entry] of this.#sub) if (entry.expiresAt <= now) this.#sub.delete(key);
  }

  get size(): number {
    return this.#jti.size + this.#sid.size + this.#sub.size;
  }

  isRevoked(claims: AccessClaims): boolean {
    const now = this.now();
    const live = (expiresAt: number | undefined) => expiresAt !== undefined && expiresAt > now;
    if (live(this.#jti.get(claims.jti)) || live(this.#sid.get(claims.sid))) return true;
    const user = this.#sub.get(claims.sub);
    if (!user || !live(user.expiresAt)) return false;
    // The version decides; notBefore is the fallback for an entry without one (a token issued before it is revoked;
    // the jti's millisecond time is exact, `iat` is whole seconds and so errs towards revoking).
    if (user.minVersion !== undefined) return claims.ver < user.minVersion;
    if (user.notBefore !== undefined) return (uuidv7Time(claims.jti) ?? claims.iat * 1000) < user.notBefore;
    return false;
  }
}

function isFeedItem(value: unknown): value is FeedItem {
  const item = value as Partial<FeedItem> | null;
  return (
    typeof item === 'object' &&
    item !== null &&
    (item.type === 'jti' || item.type === 'sid' || item.type === 'sub') &&
    typeof item.value === 'string' &&
    typeof item.expiresAt === 'string' &&
    (item.minVersion === undefined || Number.isSafeInteger(item.minVersion)) &&
    (item.notBefore === undefined || typeof item.notBefore === 'string')
  );
}

/** Reads every page of the feed after the list's cursor into the list. */
async function pollFeed(list: RevocationList, feed: RevocationFeedOptions, signal: AbortSignal): Promise<number> {
  let received = 0;
  for (;;) {
    const url = new URL(feed.url);
    url.searchParams.set('since', list.cursor);
    url.searchParams.set('limit', String(FEED_PAGE));
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${feed.token}`, accept: 'application/json' },
      signal: AbortSignal.any([signal, AbortSignal.timeout(feed.requestTimeoutMs ?? 10_000)]),
    });
    if (response.status !== 200) throw new Error(`revocation feed answered ${response.status}`);
    const body = (await response.json()) as { items?: unknown; cursor?: unknown };
    if (!Array.isArray(body.items) || typeof body.cursor !== 'string' || !body.items.every(isFeedItem)) {
      throw new Error('revocation feed: unexpected response shape');
    }
    for (const item of body.items) list.apply(item);
    list.cursor = body.cursor;
    received += body.items.length;
    if (body.items.length < FEED_PAGE) return received;
  }
}

class AuthError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_TEXT: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' };

async function authPlugin(app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  // Fail at boot, not at the first request.
  for (const name of ['issuer', 'audience'] as const) {
    if (typeof options[name] !== 'string' || options[name] === '') throw new Error(`auth-plugin: ${name} is required`);
  }
  const jwksUrl = new URL(options.jwksUrl);
  const algorithms = options.algorithms ?? ['RS256'];
  if (algorithms.length === 0 || algorithms.some((alg) => alg === 'none' || alg.startsWith('HS'))) {
    throw new Error('auth-plugin: algorithms must name asymmetric algorithms only');
  }
  const feed = options.revocationFeed;
  if (feed) {
    new URL(feed.url);
    if (!feed.token) throw new Error('auth-plugin: revocationFeed.token is required');
    if (!(feed.pollIntervalMs > 0)) throw new Error('auth-plugin: revocationFeed.pollIntervalMs must be positive');
  } else {
    app.log.warn('auth-plugin: no revocation feed: logged-out and revoked tokens stay valid here until they expire');
  }
  const maxStalenessMs = feed ? (feed.maxStalenessMs ?? Math.max(3 * feed.pollIntervalMs, 30_000)) : 0;

  // Cached; refetched when a token names an unknown kid (at most once per cooldown), so a rotated-in key is picked
  // up without a restart. Only keys of this set verify: jku, x5u and embedded jwk headers are ignored.
  const jwks = createRemoteJWKSet(jwksUrl, {
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
  });
  const verifyOptions = {
    issuer: options.issuer,
    audience: options.audience,
    algorithms,
    // jose compares typ case-insensitively and without `application/`, so `application/at+jwt` passes too.
    typ: 'at+jwt',
    clockTolerance: options.clockToleranceSec ?? 30,
    requiredClaims: REQUIRED_CLAIMS,
  };

  const revocations = new RevocationList();
  app.decorate('revocationList', revocations);
  app.decorateRequest('accessClaims', null);

  if (feed) {
    const stopped = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      try {
        await pollFeed(revocations, feed, stopped.signal);
        revocations.lastSuccess = Date.now();
      } catch (error) {
        if (!stopped.signal.aborted) app.log.warn({ err: error }, 'auth-plugin: revocation feed poll failed');
      }
      revocations.prune();
      if (!stopped.signal.aborted) timer = setTimeout(tick, feed.pollIntervalMs);
    };
    // The first poll before the server is ready: it starts with the live deny-list, not an empty one.
    await tick();
    app.addHook('onClose', async () => {
      stopped.abort();
      clearTimeout(timer);
    });
  }

  const send = (reply: FastifyReply, error: AuthError) => {
    const realm = `Bearer realm="${options.issuer}"`;
    if (error.statusCode === 401) {
      const challenge =
        error.code === 'TOKEN_MISSING'
          ? realm
          : error.code === 'MFA_REQUIRED'
            ? `${realm}, error="insufficient_user_authentication", error_description="a second factor is required"`
            : `${realm}, error="invalid_token"`;
      reply.header('www-authenticate', challenge);
    } else if (error.statusCode === 403) {
      reply.header('www-authenticate', `${realm}, error="insufficient_scope"`);
    } else {
      reply.header('retry-after', String(Math.ceil((feed?.pollIntervalMs ?? 1000) / 1000)));
    }
    return reply.code(error.statusCode).send({
      statusCode: error.statusCode,
      code: error.code,
      error: STATUS_TEXT[error.statusCode],
      message: error.message,
    });
  };

  async function verify(request: FastifyRequest): Promise<AccessClaims> {
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer(?: (.*))?$/i.exec(header);
    if (!match) throw new AuthError(401, 'TOKEN_MISSING', 'An access token is required');
    const token = match[1]?.trim() ?? '';
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, verifyOptions));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new AuthError(401, 'TOKEN_EXPIRED', 'The access token has expired');
      // A JWKS that cannot be fetched is our outage, not the client's bad token.
      const outage =
        !(error instanceof errors.JOSEError) ||
        error instanceof errors.JWKSTimeout ||
        error instanceof errors.JWKSInvalid ||
        error.code === 'ERR_JOSE_GENERIC';
      if (outage) {
        request.log.error({ err: error }, 'auth-plugin: JWKS unavailable');
        throw new AuthError(503, 'SERVICE_UNAVAILABLE', 'Token verification is unavailable');
      }
      throw new AuthError(401, 'TOKEN_INVALID', 'The access token is invalid');
    }
    const claims = payload as Partial<AccessClaims>;
    const valid =
      typeof claims.sub === 'string' &&
      typeof claims.jti === 'string' &&
      typeof claims.sid === 'string' &&
      Array.isArray(claims.roles) &&
      claims.roles.every((role) => typeof role === 'string') &&
      Number.isSafeInteger(claims.ver) &&
      (claims.ver as number) >= 0 &&
      Array.isArray(claims.amr) &&
      claims.amr.every((method) => typeof method === 'string');
    if (!valid) throw new AuthError(401, 'TOKEN_INVALID', 'The access token is invalid');
    if (feed && Date.now() - revocations.lastSuccess > maxStalenessMs) {
      request.log.error('auth-plugin: revocation feed is stale; refusing tokens until a poll succeeds');
      throw new AuthError(503, 'SERVICE_UNAVAILABLE', 'Revocation state is unavailable');
    }
    if (revocations.isRevoked(claims as AccessClaims)) {
      throw new AuthError(401, 'TOKEN_REVOKED', 'The access token has been revoked');
    }
    return claims as AccessClaims;
  }

  const authenticate: preHandlerAsyncHookHandler = async (request, reply) => {
    try {
      request.accessClaims = await verify(request);
    } catch (error) {
      if (error instanceof AuthError) return send(reply, error);
      throw error;
    }
  };
  app.decorate('verifyAccessToken', authenticate);

  app.decorate('requireRole', (role: string): preHandlerAsyncHookHandler => {
    return async function (request, reply) {
      await authenticate.call(this, request, reply);
      if (reply.sent) return reply;
      if (!request.accessClaims?.roles.includes(role)) {
        return send(reply, new AuthError(403, 'FORBIDDEN', `The "${role}" role is required`));
      }
    };
  });

  app.decorate('requireMfa', (): preHandlerAsyncHookHandler => {
    return async function (request, reply) {
      await authenticate.call(this, request, reply);
      if (reply.sent) return reply;
      if (!request.accessClaims?.amr.includes('mfa')) {
        return send(reply, new AuthError(401, 'MFA_REQUIRED', 'Log in with a second factor (TOTP or a passkey)'));
      }
    };
  });
}

export default fp(authPlugin, { name: 'resource-server-auth', fastify: '5.x' });
