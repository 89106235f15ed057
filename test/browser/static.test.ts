// The web module without a browser: what it serves, under which CSP, and what it leaves to the API.
import t from 'tap';
import { ACTION_PAGES } from '../../src/modules/web/index.js';
import { buildTestApp } from '../helpers/app.js';

t.test('the app, its pages and the client are served under the page CSP', async (t) => {
  const { app } = await buildTestApp(t);
  for (const [url, type] of [
    ['/', 'text/html'],
    ['/app.js', 'application/javascript'],
    ['/app.css', 'text/css'],
    ['/config.js', 'application/javascript'],
    ['/account.js', 'application/javascript'],
    ['/mfa.js', 'application/javascript'],
    ['/qr.js', 'application/javascript'],
    ...ACTION_PAGES.map((page) => [`/${page}.js`, 'application/javascript']),
    ['/client/auth-client.js', 'application/javascript'],
    ['/client/auth-client.d.ts', 'text/plain'],
    ...ACTION_PAGES.map((page) => [`/${page}`, 'text/html']),
  ] as const) {
    const response = await app.inject({ url });
    t.equal(response.statusCode, 200, `${url} is served`);
    t.match(response.headers['content-type'], type, `${url} has its type`);
    const csp = String(response.headers['content-security-policy']);
    t.match(csp, /default-src 'none';script-src 'self';style-src 'self';connect-src 'self'/, `${url}: the page CSP`);
    t.notMatch(csp, /unsafe-inline|upgrade-insecure-requests/, `${url}: nothing inline, plain HTTP on localhost works`);
    t.equal(response.headers['x-content-type-options'], 'nosniff', `${url} keeps helmet's other headers`);
  }
  for (const url of ['/', ...ACTION_PAGES.map((page) => `/${page}`)]) {
    const html = (await app.inject({ url })).body;
    t.notMatch(
      html,
      /<script(?![^>]*\ssrc=)|<style|\sstyle=|\son[a-z]+=/i,
      `${url}: no inline script, style or handler`,
    );
    const scripts = [...html.matchAll(/<script\b[^>]*\ssrc="([^"]+)"/g)].map((match) => match[1]);
    t.same(scripts, [url === '/' ? '/app.js' : `${url}.js`], `${url}: its one external module script`);
  }
});

t.test('the API keeps its own CSP, unknown paths stay 404, the pages stay out of the OpenAPI document', async (t) => {
  const { app } = await buildTestApp(t);
  const api = await app.inject({ url: '/health/live' });
  t.match(api.headers['content-security-policy'], /^default-src 'none'/, 'API CSP unchanged');
  t.notMatch(api.headers['content-security-policy'], /connect-src 'self'/, 'the page CSP does not leak to the API');
  for (const url of ['/nope.js', '/client/', '/client/nope.js', '/web/index.html', '/../package.json', '/.env']) {
    const response = await app.inject({ url });
    t.equal(response.statusCode, 404, `${url}: 404`);
    t.equal(response.json().code, 'NOT_FOUND', `${url}: in the contract's shape`);
  }
  const paths = Object.keys((await app.inject({ url: '/docs/json' })).json().paths);
  t.notOk(
    paths.some(
      (path) => path === '/' || path.startsWith('/client') || ACTION_PAGES.some((page) => path === `/${page}`),
    ),
    'no page in the OpenAPI document',
  );
});
