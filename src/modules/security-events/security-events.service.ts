// Records a security event: a row in Postgres (in the caller's transaction) and a log line.
import type { FastifyBaseLogger } from 'fastify';
import type { Executor } from '../../db/client.js';
import type { SecurityEventType } from '../../db/schema.js';
import type { RequestContext } from '../../lib/request-context.js';
import { insertSecurityEvent } from './security-events.repository.js';

export interface SecurityEventInput {
  type: SecurityEventType;
  userId: string | null;
  context: RequestContext | null;
  at: Date;
  details?: Record<string, unknown>;
}

export async function recordSecurityEvent(
  db: Executor,
  log: FastifyBaseLogger,
  event: SecurityEventInput,
): Promise<void> {
  await insertSecurityEvent(db, {
    type: event.type,
    userId: event.userId,
    at: event.at,
    ip: event.context?.ip ?? null,
    userAgent: event.context?.userAgent ?? null,
    details: event.details,
  });
  log.info(
    { securityEvent: event.type, userId: event.userId, ip: event.context?.ip, ...event.details },
    'security event',
  );
}
