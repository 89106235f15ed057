// Decorates `store`: Redis when REDIS_URL is set, else the embedded store in the data folder.
import fp from 'fastify-plugin';
import { EmbeddedStore } from '../store/embedded-store.js';
import { RedisStore } from '../store/redis-store.js';
import type { Store } from '../store/store.js';

declare module 'fastify' {
  interface FastifyInstance {
    store: Store;
  }
}

export default fp(
  async (app) => {
    const { redisUrl, redisKeyPrefix, dataDir } = app.config;
    let store: Store;
    if (redisUrl) {
      store = await RedisStore.open({
        url: redisUrl,
        keyPrefix: redisKeyPrefix,
        onError: (error) => app.log.warn({ err: error }, 'redis error'),
      });
    } else {
      app.log.warn(
        { dataDir },
        '*** REDIS_URL is not set: using the embedded store (deny-list in the data folder, counters in memory). One process only; set REDIS_URL when running more than one instance. ***',
      );
      store = await EmbeddedStore.open(dataDir, () => app.clock.now());
    }
    app.decorate('store', store);
    app.addHook('onClose', () => store.close());
  },
  { name: 'store', dependencies: ['config'] },
);
