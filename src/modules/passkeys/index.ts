// The passkeys module: decorates `passkeys` (WebAuthn registration and sign-in) and serves its routes.
import fp from 'fastify-plugin';
import passkeysRoutes from './passkeys.routes.js';
import { PasskeyService } from './passkeys.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    passkeys: PasskeyService;
  }
}

export default fp(
  async (app) => {
    const { db, sessions, config, clock, log } = app;
    app.decorate(
      'passkeys',
      new PasskeyService({ db, sessions, config, emailVerification: config.mail.verification, clock, log }),
    );
    await app.register(passkeysRoutes);
  },
  {
    name: 'passkeys',
    dependencies: ['config', 'db', 'store', 'authenticate', 'cookies', 'sessions'],
  },
);
