// Records a security event: a row in Postgres (in the caller's transaction) and a log line.
import type { FastifyBaseLogger } from 'fastify';
import type { Executor } from '../../db/client.js';
import type { SecurityEventType } from '../../db/schema.js';
import { decodeCursor, paginate } from '../../lib/cursor.js';
import type { RequestContext } from '../../lib/request-context.js';
import { insertSecurityEvent, listSecurityEvents } from './security-events.repository.js';
import type { SecurityEventList } from './security-events.schemas.js';

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

export async function listOwnSecurityEvents(
  db: Executor,
  userId: string,
  query: { limit: number; cursor?: string },
): Promise<SecurityEventList> {
  const rows = await listSecurityEvents(db, userId, query.limit + 1, decodeCursor(query.cursor));
  const page = paginate(rows, query.limit, (row) => ({ at: row.at, id: row.id }));
  return {
    items: page.rows.map((row) => ({ type: row.type, at: row.at.toISOString(), ip: row.ip, userAgent: row.userAgent })),
    nextCursor: page.nextCursor,
  };
}
