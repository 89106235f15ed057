// Decorates `keys`: the signing key ring from KEYS_DIR and its keys.json (a dev key is generated outside production).
import fp from 'fastify-plugin';
import { type KeyRing, loadKeyRing } from '../keys/key-ring.js';

declare module 'fastify' {
  interface FastifyInstance {
    keys: KeyRing;
  }
}

export default fp(
  async (app) => {
    const { keysDir, jwtAlgorithm, isProduction } = app.config;
    const keys = await loadKeyRing({
      keysDir,
      algorithm: jwtAlgorithm,
      // Production never invents a key: a missing one is a deployment error.
      generateIfEmpty: !isProduction,
      now: app.clock.now(),
      clock: () => app.clock.now(),
      onGenerated: (key) =>
        app.log.warn(
          { kid: key.kid, file: key.file },
          `*** No ${jwtAlgorithm} key in ${keysDir}: generated a development key. Provision real keys for production. ***`,
        ),
    });
    app.log.info(
      {
        activeKid: keys.active.kid,
        published: keys.keys.map((key) => ({
          kid: key.kid,
          // 0: no time recorded in keys.json, so active since ever.
          activatesAt: key.activatesAt === 0 ? 'always' : new Date(key.activatesAt).toISOString(),
        })),
      },
      'signing keys loaded',
    );
    app.decorate('keys', keys);
  },
  { name: 'keys', dependencies: ['config'] },
);
