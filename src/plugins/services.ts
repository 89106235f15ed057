// Decorates `services`: the application services, wired explicitly from the instance's decorators.
import fp from 'fastify-plugin';
import { AuthService } from '../modules/auth/auth.service.js';
import { LoginThrottle } from '../modules/auth/login-throttle.js';
import { TokenService } from '../modules/auth/tokens.service.js';
import { SessionService } from '../modules/sessions/sessions.service.js';
import { UserService } from '../modules/users/users.service.js';

export interface Services {
  tokens: TokenService;
  auth: AuthService;
  sessions: SessionService;
  users: UserService;
}

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

export default fp(
  async (app) => {
    const { db, passwords, accessTokens, revocations, store, config, clock, log } = app;
    const tokens = new TokenService({ db, accessTokens, revocations, config, clock, log });
    app.decorate('services', {
      tokens,
      auth: new AuthService({
        db,
        passwords,
        tokens,
        throttle: new LoginThrottle(store, config.rateLimit),
        clock,
        log,
      }),
      sessions: new SessionService({ db, passwords, revocations, clock, log }),
      users: new UserService({ db, revocations, clock, log }),
    });
  },
  { name: 'services', dependencies: ['db', 'store', 'passwords', 'access-tokens', 'revocations'] },
);
