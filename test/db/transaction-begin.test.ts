// A transaction whose BEGIN fails (its connection died between checkout and BEGIN) must still give its client back.
// drizzle-orm 0.45 runs BEGIN outside its try/finally, so each such failure kept one of the pool's ten clients for
// good: after ten, every query waited for a connection and the service answered 503 until restarted (seen in
// connection-loss.test.ts under CI load).

import { sql } from 'drizzle-orm';
import type pg from 'pg';
import t from 'tap';
import { openPostgres } from '../../src/db/client.js';
import { createTestDatabase } from '../helpers/database.js';
import { testServers } from '../helpers/servers.js';

const servers = await testServers();

t.test('a failed BEGIN returns its client to the pool, which replaces it', async (t) => {
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const handle = await openPostgres(database.url, () => undefined);
  t.teardown(() => handle.close());
  const pool = (handle.db as unknown as { $client: pg.Pool }).$client;

  // More failures than the pool has clients (10).
  for (let attempt = 1; attempt <= 15; attempt++) {
    // The next client handed out loses its connection before drizzle sends BEGIN on it.
    pool.once('acquire', (client) => {
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    });
    await t.rejects(
      handle.db.transaction(async (tx) => tx.execute(sql`SELECT 1`)),
      `attempt ${attempt}: the transaction fails`,
    );
  }
  const state = handle.pool?.();
  t.equal((state?.total ?? 0) - (state?.idle ?? 0), 0, 'no client is left checked out');
  const result = (await handle.db.transaction(async (tx) => tx.execute(sql`SELECT 1 AS one`))) as unknown as {
    rows: unknown[];
  };
  t.same(result.rows, [{ one: 1 }], 'a transaction afterwards gets a working connection');
});
