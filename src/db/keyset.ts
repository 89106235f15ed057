// The keyset-pagination condition on (time, id), shared by every list: rows strictly after the cursor's position.
import { type AnyColumn, and, eq, gt, lt, or, type SQL } from 'drizzle-orm';
import type { CursorPosition } from '../lib/cursor.js';

/** `order` is the list's direction: `desc` pages towards older rows, `asc` towards newer ones. */
export function afterPosition(
  time: AnyColumn,
  id: AnyColumn,
  after: CursorPosition | undefined,
  order: 'asc' | 'desc',
): SQL | undefined {
  if (!after) return undefined;
  const beyond = order === 'desc' ? lt : gt;
  return or(beyond(time, after.at), and(eq(time, after.at), beyond(id, after.id)));
}
