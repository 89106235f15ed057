// Real Chromium with the app on http://app.site.localtest calling the service on http://auth.site.localtest: another
// host of the same site (SameSite=Strict cookies still flow), CORS with credentials for the app's exact origin,
// COOKIE_SECURE=false (plain HTTP on a non-localhost name), and the CSRF value taken from the token response.
import fastifyStatic from '@fastify/static';
import Fastify from 'fastify';
import t from 'tap';
import {
  CLIENT_ROOT,
  WEB_ROOT,
  WEBAUTHN_BROWSER_DIR,
  WEBAUTHN_BROWSER_FILE,
  WEBAUTHN_BROWSER_URL,
} from '../../src/modules/web/index.js';
import { cookieNames } from '../../src/plugins/cookies.js';
import { buildTestApp } from '../helpers/app.js';
import { ACCESS_TOKEN_TTL, launchChromium, runFlow } from './flow.js';

t.test('the browser app on another host of the same site', async (t) => {
  // The frontend's own static server: the same files, a config.js naming the service, a CSP that may connect to it.
  let authOrigin = '';
  const frontend = Fastify();
  t.teardown(() => frontend.close());
  frontend.addHook('onSend', async (_request, reply) => {
    reply.header(
      'content-security-policy',
      `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' ${authOrigin}; ` +
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
  });
  frontend.get('/config.js', async (_request, reply) =>
    reply.type('text/javascript').send(`export const authBaseUrl = ${JSON.stringify(authOrigin)};\n`),
  );
  await frontend.register(fastifyStatic, { root: WEB_ROOT, wildcard: false, globIgnore: ['**/config.js'] });
  await frontend.register(fastifyStatic, { root: CLIENT_ROOT, prefix: '/client/', decorateReply: false });
  // web/passkeys.js imports the WebAuthn browser library from here.
  frontend.get(WEBAUTHN_BROWSER_URL, (_request, reply) => reply.sendFile(WEBAUTHN_BROWSER_FILE, WEBAUTHN_BROWSER_DIR));
  await frontend.listen({ port: 0, host: '127.0.0.1' });
  const appOrigin = `http://app.site.localtest:${(frontend.server.address() as { port: number }).port}`;

  const { app } = await buildTestApp(t, {
    env: { ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL), COOKIE_SECURE: 'false', CORS_ORIGINS: appOrigin },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  authOrigin = `http://auth.site.localtest:${(app.server.address() as { port: number }).port}`;

  const browser = await launchChromium(t, [
    '--host-resolver-rules=MAP *.localtest 127.0.0.1',
    // Web Locks exist only in secure contexts; a real cross-host deployment is HTTPS, this test is plain HTTP.
    `--unsafely-treat-insecure-origin-as-secure=${appOrigin}`,
  ]);
  await runFlow(t, {
    name: 'cross-host',
    app,
    appUrl: `${appOrigin}/`,
    authUrl: authOrigin,
    cookies: cookieNames(false),
    browser,
  });
});
