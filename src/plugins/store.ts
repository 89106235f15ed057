// Decorates `store`: Redis when REDIS_URL or REDIS_CLUSTER_NODES is set (one server, Sentinel or Cluster), else the
// embedded store in the data folder. Each is imported only when configured, so the embedded defaults never load ioredis.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Store } from '../store/store.js';

declare module 'fastify' {
  interface FastifyInstance {
    store: Store;
  }
}

export default fp(
  async (app) => {
    const { redis, redisKeyPrefix, dataDir } = app.config;
    let store: Store;
    if (redis) {
      const { RedisStore } = await import('../store/redis-store.js');
      store = await RedisStore.open({
        target: redis,
        keyPrefix: redisKeyPrefix,
        onError: (error) => app.log.warn({ err: error }, 'redis error'),
      });
    } else {
      app.log.warn(
        { dataDir },
        '*** neither REDIS_URL nor REDIS_CLUSTER_NODES is set: using the embedded store (deny-list in the data folder, counters in memory). One process only; set REDIS_URL (or REDIS_CLUSTER_NODES) when running more than one instance. ***',
      );
      const { EmbeddedStore } = await import('../store/embedded-store.js');
      store = await EmbeddedStore.open(dataDir, () => app.clock.now());
    }
    app.addHook('onClose', () => store.close());
    await checkEviction(app, store);
    app.decorate('store', store);
  },
  { name: 'store', dependencies: ['config'] },
);

/**
 * Deny-list entries carry TTLs, and every `maxmemory-policy` but `noeviction` may evict such keys under memory
 * pressure, silently bringing revoked tokens back. Refused in production; a loud warning otherwise, and whenever
 * the policy cannot be read (CONFIG disabled on managed Redis, or Redis down at boot).
 */
async function checkEviction(app: FastifyInstance, store: Store): Promise<void> {
  const check = await store.checkEviction();
  if (check.policy === null) {
    app.log.warn(
      { reason: check.reason },
      '*** could not check Redis maxmemory-policy: make sure it is noeviction, or revoked tokens may come back when keys are evicted ***',
    );
    return;
  }
  if (check.safe) return;
  const message = `Redis maxmemory-policy is ${check.policy}: it may evict deny-list keys, bringing revoked tokens back; set it to noeviction`;
  if (app.config.isProduction) {
    await store.close();
    throw new Error(message);
  }
  app.log.warn({ maxmemoryPolicy: check.policy }, `*** ${message} ***`);
}
