// The browser app (web/) at / and the browser client (client/) at /client/: static files under a CSP of their own.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import fp from 'fastify-plugin';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
export const WEB_ROOT = path.join(repoRoot, 'web');
export const CLIENT_ROOT = path.join(repoRoot, 'client');

/**
 * @simplewebauthn/browser's one-file bundle (it defines `globalThis.SimpleWebAuthnBrowser`), for web/passkeys.js.
 * A frontend served from another host must serve it at the same path, next to its copy of web/.
 */
export const WEBAUTHN_BROWSER_URL = '/vendor/simplewebauthn-browser.js';
export const WEBAUTHN_BROWSER_DIR = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')),
  '..',
  'dist',
  'bundle',
);
export const WEBAUTHN_BROWSER_FILE = 'index.umd.min.js';

/** The pages the mails link to (APP_URL defaults to the issuer); each reads its token and takes it out of the URL. */
export const ACTION_PAGES = ['verify-email', 'reset-password', 'confirm-email'] as const;

// The pages hold no inline script or style, so 'self' is all they need; the API keeps `default-src 'none'`.
// No upgrade-insecure-requests: it would break plain-HTTP development on localhost.
export const WEB_CSP_DIRECTIVES = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  connectSrc: ["'self'"],
  imgSrc: ["'self'"],
  formAction: ["'self'"],
  baseUri: ["'none'"],
  frameAncestors: ["'none'"],
};

export default fp(
  async (app) => {
    // A build that forgot the files (an image without web/ or client/) fails at boot, not with a 404 at `/`.
    for (const file of [
      path.join(WEB_ROOT, 'index.html'),
      path.join(CLIENT_ROOT, 'auth-client.js'),
      path.join(WEBAUTHN_BROWSER_DIR, WEBAUTHN_BROWSER_FILE),
    ]) {
      if (!existsSync(file)) throw new Error(`web: ${file} is missing (the browser app and client are served from it)`);
    }
    await app.register(async (web) => {
      // Helmet reads per-route options from the route config; this scope's routes get the page CSP, no other route.
      web.addHook('onRoute', (route) => {
        route.config = {
          ...route.config,
          helmet: { contentSecurityPolicy: { useDefaults: false, directives: WEB_CSP_DIRECTIVES } },
        } as typeof route.config;
      });
      // wildcard: false registers one route per file found at boot, so unknown paths still reach the 404 handler.
      await web.register(fastifyStatic, { root: WEB_ROOT, prefix: '/', wildcard: false, index: 'index.html' });
      await web.register(fastifyStatic, {
        root: CLIENT_ROOT,
        prefix: '/client/',
        wildcard: false,
        index: false,
        decorateReply: false,
        // `.ts` would otherwise be served as an MPEG transport stream.
        setHeaders: (reply, file) => {
          if (file.endsWith('.d.ts')) reply.header('content-type', 'text/plain; charset=utf-8');
        },
      });
      // From node_modules, so the page runs the version the lock file pins; same origin, so 'self' covers it.
      web.get(WEBAUTHN_BROWSER_URL, { schema: { hide: true } }, (_request, reply) =>
        reply.sendFile(WEBAUTHN_BROWSER_FILE, WEBAUTHN_BROWSER_DIR),
      );
      for (const page of ACTION_PAGES) {
        web.get(`/${page}`, { schema: { hide: true } }, (_request, reply) => reply.sendFile(`${page}.html`));
      }
    });
  },
  { name: 'web', dependencies: ['security'] },
);
