// The accounts module: decorates `accounts` (verification, reset, email change by mail) and serves its routes.
import fp from 'fastify-plugin';
import accountRoutes from './accounts.routes.js';
import { AccountService } from './accounts.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    accounts: AccountService;
  }
}

export default fp(
  async (app) => {
    const { db, auth, sessions, revocations, passwords, mail, store, config, clock, log } = app;
    const accounts = new AccountService({
      db,
      auth,
      sessions,
      revocations,
      passwords,
      mail,
      store,
      config,
      clock,
      log,
    });
    app.decorate('accounts', accounts);
    auth.onRegistered((user, context) => accounts.afterRegistration(user, context));
    await app.register(accountRoutes);
    // Registered after the mail plugin, so this runs first: deferred work queues its mail before the queue closes.
    // Only the deferred work, not its delivery: closing the queue then gives up the mail waiting for a retry.
    app.addHook('onClose', () => accounts.drained());
  },
  {
    name: 'accounts',
    dependencies: ['config', 'db', 'store', 'passwords', 'mail', 'authenticate', 'auth', 'sessions', 'revocations'],
  },
);
