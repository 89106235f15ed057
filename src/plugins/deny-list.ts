// Decorates `denyList`: the verifier's read of the deny-list and the one path that writes it, kept in step with
// Postgres (rebuilt from it when the store lost entries). The revocations module supplies the rows to rebuild from.
import fp from 'fastify-plugin';
import { DenyList } from '../store/deny-list.js';

declare module 'fastify' {
  interface FastifyInstance {
    denyList: DenyList;
  }
}

export default fp(
  async (app) => {
    const denyList = new DenyList(app.store, () => app.clock.now(), app.log);
    app.decorate('denyList', denyList);
    // After every module registered: the source is set by then.
    app.addHook('onReady', () => denyList.start());
    app.addHook('onClose', () => denyList.close());
  },
  { name: 'deny-list', dependencies: ['config', 'store'] },
);
