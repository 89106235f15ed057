// The jwks module: the public keys resource servers verify with.
import fp from 'fastify-plugin';
import jwksRoutes from './jwks.routes.js';

export default fp(
  async (app) => {
    await app.register(jwksRoutes);
  },
  { name: 'jwks', dependencies: ['config', 'keys'] },
);
