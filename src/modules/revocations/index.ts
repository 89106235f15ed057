// The revocations module: decorates `revocations`, the one writer of the deny-list (and the source of its rebuilds),
// and serves the feed.
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
    const service = new RevocationService(app.db, app.denyList, app.config, app.clock);
    app.denyList.setSource(() => service.liveEntries());
    app.decorate('revocations', service);
    await app.register(revocationRoutes);
  },
  { name: 'revocations', dependencies: ['config', 'db', 'deny-list', 'authenticate'] },
);
