// Opaque keyset cursors: (time, id) of the last row of a page, base64url JSON. A malformed one is a 400.
import { ValidationFailed } from '../errors.js';

export interface CursorPosition {
  at: Date;
  id: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Exactly what encodeCursor writes, years 0001-9999: JavaScript dates reach year 275760 (written `+275760-...`),
// which Postgres would refuse with a 500.
const ISO_TIME = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function encodeCursor({ at, id }: CursorPosition): string {
  return Buffer.from(JSON.stringify([at.toISOString(), id])).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): CursorPosition | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      const at = new Date(value[0]);
      // The round trip also refuses dates that do not exist (2024-02-30 would roll over to March).
      if (
        ISO_TIME.test(value[0]) &&
        !Number.isNaN(at.getTime()) &&
        at.toISOString() === value[0] &&
        UUID.test(value[1])
      ) {
        return { at, id: value[1] };
      }
    }
  } catch {
    // fall through
  }
  throw new ValidationFailed('querystring/cursor is malformed');
}

/** Splits a page fetched with limit + 1 rows into its items and the cursor of the next page. */
export function paginate<Row>(
  rows: Row[],
  limit: number,
  position: (row: Row) => CursorPosition,
): { rows: Row[]; nextCursor: string | null } {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const page = rows.slice(0, limit);
  return { rows: page, nextCursor: encodeCursor(position(page[page.length - 1] as Row)) };
}
