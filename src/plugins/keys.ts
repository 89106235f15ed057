// Decorates `keys`: the signing key ring from KEYS_DIR and its keys.json (a dev key is generated outside production),
// re-read every KEYS_RELOAD_INTERVAL so keys:rotate and keys:retire take effect on every instance without a restart.
import fp from 'fastify-plugin';
import { loadKeyRing } from '../keys/key-ring.js';
import { describeKeys, LiveKeyRing, reloadKeyRing } from '../keys/live-key-ring.js';

declare module 'fastify' {
  interface FastifyInstance {
    keys: LiveKeyRing;
  }
}

export default fp(
  async (app) => {
    const { keysDir, jwtAlgorithm, isProduction, keysReloadInterval } = app.config;
    const clock = () => app.clock.now();
    const initial = await loadKeyRing({
      keysDir,
      algorithm: jwtAlgorithm,
      // Production never invents a key: a missing one is a deployment error.
      generateIfEmpty: !isProduction,
      now: app.clock.now(),
      clock,
      onGenerated: (key) =>
        app.log.warn(
          { kid: key.kid, file: key.file },
          `*** No ${jwtAlgorithm} key in ${keysDir}: generated a development key. Provision real keys for production. ***`,
        ),
    });
    app.log.info({ activeKid: initial.active.kid, published: describeKeys(initial) }, 'signing keys loaded');
    const keys = new LiveKeyRing(initial);
    app.decorate('keys', keys);

    if (keysReloadInterval === 0) return;
    // A reload never generates a key: an emptied folder is a mistake to report, not a reason to mint one.
    const load = () =>
      loadKeyRing({ keysDir, algorithm: jwtAlgorithm, generateIfEmpty: false, now: app.clock.now(), clock });
    let reloading: Promise<void> | undefined;
    const reload = async () => {
      const outcome = await reloadKeyRing(keys, load);
      if (outcome.status === 'failed') {
        app.log.error(
          { err: outcome.error, keysDir, activeKid: keys.active.kid },
          'signing keys not reloaded: keeping the last good key ring',
        );
      } else if (outcome.status === 'replaced') {
        app.log.info(
          { ...outcome.change, activeKid: keys.active.kid, published: describeKeys(keys.current) },
          'signing keys reloaded',
        );
      }
    };
    const timer = setInterval(() => {
      // One reload at a time: a slow disk must not pile them up.
      reloading ??= reload().finally(() => {
        reloading = undefined;
      });
    }, keysReloadInterval * 1000);
    // The timer alone never keeps the process alive.
    timer.unref();
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await reloading;
    });
  },
  { name: 'keys', dependencies: ['config'] },
);
