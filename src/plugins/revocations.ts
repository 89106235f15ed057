// Decorates `revocations`: the one writer of the deny-list.
import fp from 'fastify-plugin';
import { RevocationService } from '../modules/revocations/revocations.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    revocations: RevocationService;
  }
}

export default fp(
  async (app) => {
    app.decorate('revocations', new RevocationService(app.store, app.config, app.clock));
  },
  { name: 'revocations', dependencies: ['config', 'store'] },
);
