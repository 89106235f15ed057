// SQL for security events.
import type { Executor } from '../../db/client.js';
import { type SecurityEventType, securityEvents } from '../../db/schema.js';

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
