// The revocations module: decorates `revocations`, the one writer of the deny-list, and serves the feed.
import fp from 'fastify-plugin';
import revocationRoutes from './revocations.routes.js';
import { RevocationService } from './revocations.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    revocations: RevocationService;
  }
}

export default fp(
  async (app) => {
    app.decorate('revocations', new RevocationService(app.store, app.config, app.clock));
    await app.register(revocationRoutes);
  },
  { name: 'revocations', dependencies: ['config', 'db', 'store', 'authenticate'] },
);
