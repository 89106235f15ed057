// Swagger UI at /docs under its own CSP: the page loads only same-origin scripts and styles the CSP allows, and,
// where a Chromium is available (CHROMIUM_PATH, or /usr/bin/chromium), renders the document with no CSP violation.
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';

const { app } = await buildTestApp(t);

function directives(csp: string): Map<string, string[]> {
  return new Map(
    csp
      .split(';')
      .map((part) => part.trim().split(/\s+/))
      .filter(([name]) => name)
      .map(([name, ...values]) => [name as string, values]),
  );
}

t.test('the /docs page and its assets are allowed by its CSP', async (t) => {
  const page = await app.inject({ method: 'GET', url: '/docs' });
  t.equal(page.statusCode, 200);
  const csp = directives(String(page.headers['content-security-policy']));
  const scriptSrc = csp.get('script-src') ?? csp.get('default-src') ?? [];
  const styleSrc = csp.get('style-src') ?? csp.get('default-src') ?? [];
  t.ok(scriptSrc.includes("'self'"), 'script-src allows same-origin scripts');
  t.notOk(scriptSrc.includes("'unsafe-inline'") || scriptSrc.includes("'unsafe-eval'"), 'and no inline or eval');
  t.ok(styleSrc.includes("'self'"), 'style-src allows same-origin styles');
  t.ok(csp.get('connect-src')?.includes("'self'"), 'connect-src lets the UI fetch /docs/json');
  t.notOk(csp.has('upgrade-insecure-requests'), 'no upgrade-insecure-requests (plain-HTTP development)');

  const html = page.body;
  t.notMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline script element');
  t.notMatch(html, /<style[\s>]/, 'no inline style element');
  const assets = [
    ...[...html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((match) => match[1] as string),
    ...[...html.matchAll(/<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"/g)].map((match) => match[1] as string),
  ];
  t.ok(assets.length >= 4, `the page loads scripts and styles (${assets.length})`);
  for (const asset of assets) {
    t.notMatch(asset, /^(https?:)?\/\//, `${asset}: same origin`);
    const url = new URL(asset, 'http://auth.test/docs').pathname;
    const response = await app.inject({ method: 'GET', url });
    t.equal(response.statusCode, 200, `${url}: served`);
  }

  const api = await app.inject({ method: 'GET', url: '/users/me' });
  t.equal(
    directives(String(api.headers['content-security-policy'])).get('default-src')?.join(' '),
    "'none'",
    'the API keeps the strict CSP',
  );
});

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
t.test('Chromium renders /docs without a CSP violation', { skip: !existsSync(executablePath) }, async (t) => {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on a TCP port');
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  // Page code, as text: this file is compiled without the DOM library.
  await page.addInitScript({
    content: `document.addEventListener('securitypolicyviolation', (event) =>
      console.error('CSP violation: ' + event.effectiveDirective + ' ' + event.blockedURI + ' ' + event.sourceFile));`,
  });
  await page.goto(`http://127.0.0.1:${address.port}/docs`);
  await page.waitForSelector('.swagger-ui .info .title', { timeout: 20_000 });
  t.match(await page.textContent('.swagger-ui .info .title'), /Auth service/, 'the document is rendered');
  await page.waitForSelector('.opblock-summary-operation-id, .opblock', { timeout: 10_000 });
  await page.waitForTimeout(500);
  t.same(problems, [], 'no CSP violation or script error');
});
