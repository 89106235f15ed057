// helmet's headers on every API response (success, error, unknown route), computed once per configuration rather
// than per request; the browser app's pages keep their own CSP over the same set (see test/browser/static.test.ts).
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';

const { app } = await buildTestApp(t);

const expected: Record<string, string | RegExp> = {
  'content-security-policy': /^default-src 'none';(?:.*;)?frame-ancestors 'none';/,
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'referrer-policy': 'no-referrer',
  'x-dns-prefetch-control': 'off',
};

for (const [label, url] of [
  ['a 200', '/health/live'],
  ['a 401', '/users/me'],
  ['a 404', '/no/such/route'],
] as const) {
  t.test(`${label} carries helmet's headers`, async (t) => {
    const response = await app.inject({ method: 'GET', url });
    for (const [name, value] of Object.entries(expected)) {
      if (typeof value === 'string') t.equal(response.headers[name], value, name);
      else t.match(response.headers[name], value, name);
    }
    t.notOk(response.headers['x-powered-by'], 'no x-powered-by');
  });
}

t.test('the same headers on every request: nothing carried over from the page routes', async (t) => {
  const page = await app.inject({ method: 'GET', url: '/' });
  t.match(page.headers['content-security-policy'], /script-src 'self'/, 'the page has its own CSP');
  const api = await app.inject({ method: 'GET', url: '/health/live' });
  t.match(api.headers['content-security-policy'], /^default-src 'none';(?:.*;)?frame-ancestors 'none';/);
  t.notMatch(api.headers['content-security-policy'], /connect-src/, 'not the page CSP');
});
