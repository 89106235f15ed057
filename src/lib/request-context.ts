// Where a request came from, as recorded on sessions and security events.
import type { FastifyRequest } from 'fastify';

export interface RequestContext {
  ip: string;
  userAgent: string | null;
}

const MAX_USER_AGENT = 512;

export function requestContext(request: FastifyRequest): RequestContext {
  const userAgent = request.headers['user-agent'];
  return { ip: request.ip, userAgent: userAgent ? userAgent.slice(0, MAX_USER_AGENT) : null };
}
