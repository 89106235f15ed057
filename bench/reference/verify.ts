// Reference (a): one RS256 verification per request (@fastify/jwt, cache off), nothing else. The ceiling of any
// authenticated route of the service.
import { listenAndAnnounce, referenceApp } from './common.js';

const app = await referenceApp();
app.get('/verify', { onRequest: (request) => request.jwtVerify() }, async (request) => ({
  userId: (request.user as { sub: string }).sub,
}));
await listenAndAnnounce(app);
