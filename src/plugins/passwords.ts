// Decorates `passwords`: the one password hasher and policy, with the configured argon2id parameters.
import fp from 'fastify-plugin';
import { Passwords } from '../modules/auth/passwords.js';

declare module 'fastify' {
  interface FastifyInstance {
    passwords: Passwords;
  }
}

export default fp(
  async (app) => {
    const passwords = new Passwords(app.config.argon2);
    await passwords.ready();
    app.decorate('passwords', passwords);
  },
  { name: 'passwords', dependencies: ['config'] },
);
