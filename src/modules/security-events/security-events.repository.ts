// SQL for security events.
import { and, desc, eq } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { afterPosition } from '../../db/keyset.js';
import { type SecurityEventType, securityEvents } from '../../db/schema.js';
import type { CursorPosition } from '../../lib/cursor.js';

export type SecurityEventRow = typeof securityEvents.$inferSelect;

export interface NewSecurityEvent {
  type: SecurityEventType;
  userId: string | null;
  at: Date;
  ip: string | null;
  userAgent: string | null;
  details?: Record<string, unknown>;
}

export async function insertSecurityEvent(db: Executor, event: NewSecurityEvent): Promise<void> {
  await db.insert(securityEvents).values({ ...event, details: event.details ?? null });
}

/** The user's events, newest first, keyset-paginated on (at, id). */
export async function listSecurityEvents(
  db: Executor,
  userId: string,
  limit: number,
  after: CursorPosition | undefined,
): Promise<SecurityEventRow[]> {
  return db
    .select()
    .from(securityEvents)
    .where(and(eq(securityEvents.userId, userId), afterPosition(securityEvents.at, securityEvents.id, after, 'desc')))
    .orderBy(desc(securityEvents.at), desc(securityEvents.id))
    .limit(limit);
}
