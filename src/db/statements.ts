// The hottest statements, run past the query builder: written once as SQL, and on Postgres named, so each connection
// parses and plans them once. Building a query through drizzle costs more CPU than Postgres spends running one of
// these, and a refresh or GET /users/me is a handful of them; every other query keeps the builder. Behind a pooler
// that cannot keep a name across transactions (PgBouncer < 1.21 in transaction mode) the pool is marked
// (`markUnnamedStatements`, DATABASE_PREPARED_STATEMENTS=false) and they run unnamed: parsed at each call, still bound.
import type pg from 'pg';
import type { Executor } from './client.js';

export interface Statement {
  /** Unique per SQL text: Postgres keeps one plan per name and connection. */
  name: string;
  text: string;
}

interface PgliteQueryable {
  query<Row>(text: string, values: unknown[]): Promise<{ rows: Row[] }>;
  /** PGlite and its transactions have it; pg's Pool and Client do not (and pg is not imported in embedded mode). */
  exec(text: string): Promise<unknown>;
}

const unnamed = Symbol('unnamed statements');

/** Makes runStatement run unnamed on this pool or connection (named statements are per server connection). */
export function markUnnamedStatements(client: pg.Pool | pg.Client): void {
  (client as unknown as Record<symbol, boolean>)[unnamed] = true;
}

const isPglite = (client: unknown): client is PgliteQueryable =>
  typeof (client as Partial<PgliteQueryable>).exec === 'function';

/**
 * Runs a statement on the connection behind a drizzle database or transaction (inside that transaction, if one).
 * Rows come back as Postgres names them: alias columns to the property names the caller wants.
 */
export async function runStatement<Row>(executor: Executor, statement: Statement, values: unknown[]): Promise<Row[]> {
  // drizzle keeps the driver's client (a pg Pool or PoolClient, or PGlite or its transaction) on its session.
  const client = (executor as unknown as { session: { client: unknown } }).session.client;
  if (isPglite(client)) return (await client.query<Row>(statement.text, values)).rows;
  const named = (client as Record<symbol, boolean>)[unnamed] !== true;
  const result = await (client as pg.Pool | pg.PoolClient).query<Row & pg.QueryResultRow>(
    named ? { name: statement.name, text: statement.text, values } : { text: statement.text, values },
  );
  return result.rows;
}
