// Answers with issued tokens through the chosen transport: in the JSON body, or as cookies only.
import type { FastifyReply } from 'fastify';
import type { CookiePolicy } from '../../plugins/cookies.js';
import type { IssuedTokens } from '../sessions/sessions.service.js';
import type { User } from '../users/users.schemas.js';
import type { TokenResponse, Transport } from './auth.schemas.js';

export function tokenResponse(
  reply: FastifyReply,
  cookies: CookiePolicy,
  issued: { user: User; tokens: IssuedTokens },
  transport: Transport,
): TokenResponse {
  const { user, tokens } = issued;
  // Token responses must never be cached (RFC 6749 §5.1).
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
  const common = {
    tokenType: 'Bearer' as const,
    expiresIn: tokens.expiresIn,
    refreshExpiresIn: tokens.refreshExpiresIn,
    user,
  };
  if (transport === 'body') {
    return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, ...common };
  }
  const csrfToken = cookies.setSession(reply, {
    sessionId: tokens.sessionId,
    accessToken: tokens.accessToken,
    accessMaxAge: tokens.expiresIn,
    refreshToken: tokens.refreshToken,
    refreshMaxAge: tokens.refreshExpiresIn,
  });
  // Also in the body: a frontend on another host of the same site cannot read the csrf cookie.
  return { ...common, csrfToken };
}
