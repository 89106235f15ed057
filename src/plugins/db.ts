// Decorates `db` (drizzle over pg or PGlite) and `database` (its health and kind); migrates at boot.
import fp from 'fastify-plugin';
import { type Database, type DatabaseHandle, openDatabase } from '../db/client.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
    database: Pick<DatabaseHandle, 'kind' | 'ping' | 'pool'>;
  }
}

export default fp(
  async (app) => {
    const { databaseUrl, dataDir, databasePreparedStatements } = app.config;
    if (!databaseUrl) {
      app.log.warn(
        { dataDir },
        '*** DATABASE_URL is not set: using embedded PGlite in the data folder. For development only; set DATABASE_URL in production. ***',
      );
    }
    const handle = await openDatabase({ databaseUrl, dataDir, databasePreparedStatements }, (error) =>
      app.log.warn({ err: error }, 'postgres connection lost'),
    );
    const { applied, total } = handle.migrations;
    if (applied > 0) app.log.info({ applied, total }, `database migrated: ${applied} migration(s) applied`);
    else app.log.info({ applied, total }, 'database schema up to date');
    app.decorate('db', handle.db);
    app.decorate('database', { kind: handle.kind, ping: handle.ping, pool: handle.pool });
    app.addHook('onClose', () => handle.close());
  },
  { name: 'db', dependencies: ['config'] },
);
