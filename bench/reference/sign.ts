// Reference (b): one RS256 signature per request (@fastify/jwt), nothing else. The ceiling of POST /auth/refresh,
// whose one unavoidable CPU cost is signing the new access token. It takes the same JSON body as the refresh route
// (and ignores it), so the load generator sends both the same requests.
import { accessTokenPayload, listenAndAnnounce, referenceApp } from './common.js';

const app = await referenceApp();
app.post('/sign', async () => ({ accessToken: app.jwt.sign(accessTokenPayload()) }));
await listenAndAnnounce(app);
