// Issues token pairs: the access token, and the opaque refresh token whose SHA-256 alone is stored.
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Executor } from '../../db/client.js';
import { randomToken, sha256 } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { AccessTokens } from '../../plugins/access-tokens.js';
import { insertRefreshToken, insertSession } from '../sessions/sessions.repository.js';

export interface IssuedTokens {
  accessToken: string;
  /** Seconds. */
  expiresIn: number;
  refreshToken: string;
  /** Seconds. */
  refreshExpiresIn: number;
  /** The double-submit value for cookie clients. */
  csrfToken: string;
  sessionId: string;
}

export interface TokenSubject {
  id: string;
  roles: string[];
}

export class TokenService {
  constructor(
    private readonly accessTokens: AccessTokens,
    private readonly config: Pick<Config, 'refreshTokenTtl' | 'sessionMaxAge'>,
    private readonly clock: Clock,
  ) {}

  /** Opens a session and issues its first pair. */
  async startSession(db: Executor, user: TokenSubject, context: RequestContext): Promise<IssuedTokens> {
    const now = this.clock.now();
    const session = await insertSession(db, {
      userId: user.id,
      at: new Date(now),
      expiresAt: new Date(now + this.config.sessionMaxAge * 1000),
      ip: context.ip,
      userAgent: context.userAgent,
    });
    return this.issue(db, user, { id: session.id, expiresAt: session.expiresAt }, null);
  }

  /** Issues a pair in an existing session; the refresh token never outlives the session. */
  async issue(
    db: Executor,
    user: TokenSubject,
    session: { id: string; expiresAt: Date },
    parentId: string | null,
  ): Promise<IssuedTokens> {
    const now = this.clock.now();
    const refreshExpiresAt = Math.min(now + this.config.refreshTokenTtl * 1000, session.expiresAt.getTime());
    const refreshToken = randomToken();
    await insertRefreshToken(db, {
      sessionId: session.id,
      parentId,
      tokenHash: sha256(refreshToken),
      issuedAt: new Date(now),
      expiresAt: new Date(refreshExpiresAt),
    });
    const access = this.accessTokens.issue({ userId: user.id, sessionId: session.id, roles: user.roles });
    return {
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken,
      refreshExpiresIn: Math.max(0, Math.floor((refreshExpiresAt - now) / 1000)),
      csrfToken: randomToken(),
      sessionId: session.id,
    };
  }
}
