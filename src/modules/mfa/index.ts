// The mfa module: decorates `mfa` (TOTP, recovery codes, the login's second step) and serves its routes.
import fp from 'fastify-plugin';
import { LoginThrottle } from '../auth/login-throttle.js';
import mfaRoutes from './mfa.routes.js';
import { MfaService } from './mfa.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    mfa: MfaService;
  }
}

export default fp(
  async (app) => {
    const { db, auth, sessions, revocations, store, secrets, config, clock, log } = app;
    app.decorate(
      'mfa',
      new MfaService({
        db,
        auth,
        sessions,
        revocations,
        throttle: new LoginThrottle(store, config.rateLimit),
        encryptionKey: secrets.dataEncryption,
        recoveryCodeKey: secrets.recoveryCodes,
        config,
        clock,
        log,
      }),
    );
    await app.register(mfaRoutes);
  },
  {
    name: 'mfa',
    dependencies: ['config', 'db', 'store', 'secrets', 'authenticate', 'authorize', 'cookies', 'auth', 'sessions'],
  },
);
