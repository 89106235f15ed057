// Answers with issued tokens through the chosen transport: in the JSON body, or as cookies only.
import type { FastifyReply } from 'fastify';
import type { User } from '../users/users.schemas.js';
import type { TokenResponse, Transport } from './auth.schemas.js';
import { setSessionCookies } from './cookie-policy.js';
import type { IssuedTokens } from './tokens.service.js';

export function tokenResponse(
  reply: FastifyReply,
  tokens: IssuedTokens,
  user: User,
  transport: Transport,
): TokenResponse {
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
  setSessionCookies(reply, reply.server.config.cookieSecure, {
    accessToken: tokens.accessToken,
    accessMaxAge: tokens.expiresIn,
    refreshToken: tokens.refreshToken,
    refreshMaxAge: tokens.refreshExpiresIn,
    csrfToken: tokens.csrfToken,
  });
  return common;
}
