// The health module: liveness and readiness probes.
import fp from 'fastify-plugin';
import healthRoutes from './health.routes.js';

export default fp(
  async (app) => {
    await app.register(healthRoutes);
  },
  { name: 'health', dependencies: ['db', 'store'] },
);
