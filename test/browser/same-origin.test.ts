// Real Chromium against the service's own app at http://localhost: cookies Secure and prefixed (localhost is a
// secure context), no CORS.
import t from 'tap';
import { cookieNames } from '../../src/plugins/cookies.js';
import { buildTestApp } from '../helpers/app.js';
import { ACCESS_TOKEN_TTL, launchChromium, runFlow } from './flow.js';

t.test('the browser app on the same origin as the service', async (t) => {
  const { app } = await buildTestApp(t, {
    env: { ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL), COOKIE_SECURE: 'true' },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const origin = `http://localhost:${port}`;

  const api = await app.inject({ url: '/health/live' });
  t.match(api.headers['content-security-policy'], /^default-src 'none'/, "the API keeps default-src 'none'");

  const browser = await launchChromium(t);
  await runFlow(t, {
    name: 'same-origin',
    app,
    appUrl: `${origin}/`,
    authUrl: origin,
    cookies: cookieNames(true),
    browser,
  });
});
