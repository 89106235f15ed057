// The users module: decorates `users` (profiles, administration) and serves the user routes.
import fp from 'fastify-plugin';
import usersRoutes from './users.routes.js';
import { UserService } from './users.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    users: UserService;
  }
}

export default fp(
  async (app) => {
    const { db, revocations, clock, log } = app;
    app.decorate('users', new UserService({ db, revocations, clock, log }));
    await app.register(usersRoutes);
  },
  { name: 'users', dependencies: ['db', 'authenticate', 'authorize', 'revocations'] },
);
