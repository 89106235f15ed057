// GET /.well-known/openid-configuration: the issuer's metadata, used by independent clients over real HTTP: jose
// follows its jwks_uri to verify a real token, and openid-client's discovery() accepts it (issuer matched exactly).
import { randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { freePort } from '../helpers/server-process.js';
import { registerAndLogin } from '../helpers/session-flow.js';

const FEED_TOKEN = randomBytes(32).toString('base64url');

// The issuer must be the URL the metadata is fetched from: pick the port first, then listen on it.
const port = await freePort();
const issuer = `http://127.0.0.1:${port}`;
const { app, config } = await buildTestApp(t, {
  env: { ISSUER: issuer, REVOCATION_FEED_TOKEN: FEED_TOKEN, JWKS_MAX_AGE: '321' },
});
await app.listen({ port, host: '127.0.0.1' });
const discoveryUrl = `${issuer}/.well-known/openid-configuration`;

t.test('the document: true fields only, cached like the JWKS', async (t) => {
  const response = await fetch(discoveryUrl);
  t.equal(response.status, 200);
  t.match(response.headers.get('content-type'), /^application\/json/);
  t.equal(response.headers.get('cache-control'), 'public, max-age=321', 'Cache-Control: public, max-age=JWKS_MAX_AGE');
  t.strictSame(await response.json(), {
    issuer,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    response_types_supported: [],
    access_token_signing_alg_values_supported: ['RS256'],
    revocation_feed_endpoint: `${issuer}/auth/revocations`,
    service_documentation: `${issuer}/docs`,
  });
});

t.test('jose: the metadata leads to a JWKS that verifies a real token', async (t) => {
  const metadata = (await (await fetch(discoveryUrl)).json()) as {
    issuer: string;
    jwks_uri: string;
    access_token_signing_alg_values_supported: string[];
  };
  const session = await registerAndLogin(app);
  const { payload } = await jwtVerify(session.accessToken, createRemoteJWKSet(new URL(metadata.jwks_uri)), {
    issuer: metadata.issuer,
    audience: config.audience,
    typ: 'at+jwt',
    algorithms: metadata.access_token_signing_alg_values_supported,
  });
  t.equal(payload.sub, session.account.id);
});

t.test(
  "openid-client's discovery() accepts the document (allowInsecureRequests: the test issuer is http)",
  async (t) => {
    const configuration = await oidc.discovery(new URL(issuer), 'resource-server', undefined, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    const metadata = configuration.serverMetadata();
    t.equal(metadata.issuer, issuer);
    t.equal(metadata.jwks_uri, `${issuer}/.well-known/jwks.json`);
  },
);

t.test('openid-client refuses a document whose issuer is not the URL it was fetched from', async (t) => {
  const other = await buildTestApp(t, { env: { ISSUER: 'http://auth.test' } });
  await other.app.listen({ port: 0, host: '127.0.0.1' });
  const address = other.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  await t.rejects(
    oidc.discovery(new URL(`http://127.0.0.1:${address.port}`), 'resource-server', undefined, undefined, {
      execute: [oidc.allowInsecureRequests],
    }),
    { code: 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED' },
    'issuer mismatch',
  );
});

t.test('without a feed token the feed is not advertised; the issuer path is kept', async (t) => {
  const { app } = await buildTestApp(t, { env: { ISSUER: 'https://auth.example.com/tenant', JWT_ALG: 'RS256' } });
  const response = await app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
  t.equal(response.statusCode, 200);
  const body = response.json();
  t.notOk('revocation_feed_endpoint' in body, 'no revocation_feed_endpoint');
  t.equal(body.jwks_uri, 'https://auth.example.com/tenant/.well-known/jwks.json');
  const docs = await app.inject({ method: 'GET', url: '/docs/json' });
  t.equal(
    docs.json().paths['/.well-known/openid-configuration'].get.operationId,
    'getDiscoveryDocument',
    'in the OpenAPI document, with an operationId',
  );
});
