// SQL for the durable log of deny-list entries, the source of the revocation feed.
import { and, asc, gt, lt, lte } from 'drizzle-orm';
import { deleteInBatches } from '../../db/batched-delete.js';
import type { Executor } from '../../db/client.js';
import { type RevocationKind, revocations } from '../../db/schema.js';

export type RevocationRow = typeof revocations.$inferSelect;

export interface NewRevocation {
  kind: RevocationKind;
  value: string;
  notBefore: Date | null;
  minVersion: number | null;
  expiresAt: Date;
  createdAt: Date;
}

export async function insertRevocation(db: Executor, revocation: NewRevocation): Promise<void> {
  await db.insert(revocations).values(revocation);
}

/** Live entries after `sinceId`, oldest first, created no later than `settledBefore`. */
export async function listRevocationsSince(
  db: Executor,
  query: { sinceId: number; now: Date; settledBefore: Date; limit: number },
): Promise<RevocationRow[]> {
  return db
    .select()
    .from(revocations)
    .where(
      and(
        gt(revocations.id, query.sinceId),
        gt(revocations.expiresAt, query.now),
        lte(revocations.createdAt, query.settledBefore),
      ),
    )
    .orderBy(asc(revocations.id))
    .limit(query.limit);
}

/** Every entry still live, for a rebuild of the deny-list. */
export async function listLiveRevocations(db: Executor, now: Date): Promise<RevocationRow[]> {
  return db.select().from(revocations).where(gt(revocations.expiresAt, now)).orderBy(asc(revocations.id));
}

/** Deletes entries that no longer matter; returns how many. */
export async function pruneRevocations(db: Executor, now: Date): Promise<number> {
  return deleteInBatches(db, revocations, lt(revocations.expiresAt, now));
}
