// The discovery module: the issuer's metadata document (where the JWKS and the revocation feed are, which algorithm signs).
import fp from 'fastify-plugin';
import discoveryRoutes from './discovery.routes.js';

export default fp(
  async (app) => {
    await app.register(discoveryRoutes);
  },
  { name: 'discovery', dependencies: ['config', 'keys'] },
);
