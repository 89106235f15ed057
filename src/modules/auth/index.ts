// The auth module: decorates `auth` (register, login, password change) and serves the token routes.
import fp from 'fastify-plugin';
import authRoutes from './auth.routes.js';
import { AuthService } from './auth.service.js';
import { LoginThrottle } from './login-throttle.js';

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthService;
  }
}

export default fp(
  async (app) => {
    const { db, passwords, sessions, revocations, store, config, clock, log, metrics } = app;
    app.decorate(
      'auth',
      new AuthService({
        db,
        passwords,
        sessions,
        revocations,
        throttle: new LoginThrottle(store, config.rateLimit, (limit) => metrics.rateLimitHits.inc({ limit })),
        emailVerification: config.mail.verification,
        clock,
        log,
      }),
    );
    await app.register(authRoutes);
  },
  {
    name: 'auth',
    dependencies: [
      'config',
      'db',
      'store',
      'passwords',
      'authenticate',
      'cookies',
      'sessions',
      'revocations',
      'metrics',
    ],
  },
);
