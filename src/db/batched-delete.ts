// Deletes in bounded batches, each its own statement (and, outside a transaction, its own commit): a prune that
// finds a backlog of millions of dead rows must not become one statement that outlives the statement timeout, rolls
// back and so never succeeds, holding locks and writing a burst of WAL meanwhile. SKIP LOCKED leaves rows another
// instance's prune (or a live writer) holds to them.
import { type SQL, sql } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import type { Executor } from './client.js';

export const DELETE_BATCH_SIZE = 1_000;

/** Deletes every row of `table` (keyed by `id`) matching `where`, `batchSize` at a time; returns how many. */
export async function deleteInBatches(
  db: Executor,
  table: PgTable,
  where: SQL | undefined,
  batchSize = DELETE_BATCH_SIZE,
): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await db.execute(sql`
      WITH doomed AS (SELECT id FROM ${table} WHERE ${where} LIMIT ${batchSize} FOR UPDATE SKIP LOCKED),
        deleted AS (DELETE FROM ${table} WHERE id IN (SELECT id FROM doomed) RETURNING 1)
      SELECT count(*)::int AS count FROM deleted`);
    const [row] = (result as unknown as { rows: { count: number }[] }).rows;
    const count = Number(row?.count ?? 0);
    total += count;
    if (count < batchSize) return total;
  }
}
