// The OpenAPI document as generated clients read it: operation ids, named schemas, optional parameters and bodies,
// security, described responses and headers, relative servers; and redocly's recommended rules report no error.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { errorCodes } from '../../src/errors.js';
import { buildTestApp } from '../helpers/app.js';
import { redoclyLint } from './lint-openapi.js';

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
}
interface Response {
  description: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema: { $ref?: string } }>;
}
interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { required?: boolean };
  responses: Record<string, Response>;
}
interface Document {
  servers: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties?: Record<string, { enum?: string[] }> }> };
}

const { app } = await buildTestApp(t);
const document = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as Document;
const operations = Object.entries(document.paths).flatMap(([route, methods]) =>
  Object.entries(methods).map(([method, operation]) => ({ label: `${method.toUpperCase()} ${route}`, operation })),
);
const byLabel = new Map(operations.map(({ label, operation }) => [label, operation]));
const operation = (label: string): Operation => {
  const found = byLabel.get(label);
  if (!found) throw new Error(`no operation ${label}`);
  return found;
};

const PUBLIC = [
  'POST /auth/register',
  'POST /auth/login',
  'POST /auth/refresh',
  'POST /auth/logout',
  'GET /.well-known/jwks.json',
  'GET /.well-known/openid-configuration',
  'GET /health/live',
  'GET /health/ready',
  'POST /auth/verify-email/request',
  'POST /auth/verify-email',
  'POST /auth/password-reset/request',
  'POST /auth/password-reset',
  'POST /auth/email/confirm',
  'POST /auth/mfa/verify',
  'POST /auth/passkeys/login/options',
  'POST /auth/passkeys/login',
];
const CSRF = [
  'POST /auth/refresh',
  'POST /auth/logout',
  'POST /auth/logout-all',
  'POST /auth/password',
  'POST /auth/email',
  'POST /auth/mfa/totp/setup',
  'POST /auth/mfa/totp/enable',
  'POST /auth/mfa/totp/disable',
  'POST /auth/mfa/recovery-codes',
  'DELETE /users/{id}/mfa',
  'DELETE /auth/sessions/{id}',
  'PUT /users/{id}/roles',
  'DELETE /users/{id}',
  'POST /auth/passkeys/register/options',
  'POST /auth/passkeys/register',
  'DELETE /auth/passkeys/{id}',
];

t.test('every operation has the agreed operationId', async (t) => {
  const ids = Object.fromEntries(operations.map(({ label, operation }) => [label, operation.operationId]));
  t.same(ids, {
    'POST /auth/register': 'register',
    'POST /auth/login': 'login',
    'POST /auth/refresh': 'refresh',
    'POST /auth/logout': 'logout',
    'POST /auth/logout-all': 'logoutAll',
    'GET /auth/sessions': 'listSessions',
    'DELETE /auth/sessions/{id}': 'revokeSession',
    'POST /auth/password': 'changePassword',
    'GET /users/me': 'getMe',
    'GET /users/me/events': 'listMyEvents',
    'GET /users': 'listUsers',
    'GET /users/{id}': 'getUser',
    'PUT /users/{id}/roles': 'setUserRoles',
    'DELETE /users/{id}': 'deleteUser',
    'GET /.well-known/jwks.json': 'getJwks',
    'GET /.well-known/openid-configuration': 'getDiscoveryDocument',
    'GET /health/live': 'live',
    'GET /health/ready': 'ready',
    'GET /auth/revocations': 'listRevocations',
    'POST /auth/verify-email/request': 'requestEmailVerification',
    'POST /auth/verify-email': 'verifyEmail',
    'POST /auth/password-reset/request': 'requestPasswordReset',
    'POST /auth/password-reset': 'resetPassword',
    'POST /auth/email': 'requestEmailChange',
    'POST /auth/email/confirm': 'confirmEmailChange',
    'POST /auth/mfa/totp/setup': 'setupTotp',
    'POST /auth/mfa/totp/enable': 'enableTotp',
    'POST /auth/mfa/totp/disable': 'disableTotp',
    'POST /auth/mfa/recovery-codes': 'regenerateRecoveryCodes',
    'POST /auth/mfa/verify': 'verifyMfa',
    'DELETE /users/{id}/mfa': 'resetUserMfa',
    'POST /auth/passkeys/register/options': 'passkeyRegistrationOptions',
    'POST /auth/passkeys/register': 'registerPasskey',
    'GET /auth/passkeys': 'listPasskeys',
    'DELETE /auth/passkeys/{id}': 'deletePasskey',
    'POST /auth/passkeys/login/options': 'passkeyLoginOptions',
    'POST /auth/passkeys/login': 'loginWithPasskey',
  });
});

t.test('servers are relative', async (t) => {
  t.same(document.servers, [{ url: '/' }]);
});

t.test('named component schemas, referenced rather than copied', async (t) => {
  for (const name of ['Error', 'User', 'TokenResponse', 'Session', 'SessionList', 'SecurityEvent', 'UserList']) {
    t.ok(document.components.schemas[name], `components.schemas.${name}`);
  }
  t.same(document.components.schemas.Error?.properties?.code?.enum, errorCodes, 'Error.code is the catalogue');
  t.equal(
    operation('POST /auth/login').responses['200']?.content?.['application/json']?.schema.$ref,
    '#/components/schemas/LoginResponse',
  );
  // The two outcomes of a login, which a generated client narrows on `mfaRequired`.
  t.same(
    (document.components.schemas.LoginResponse as { anyOf?: { $ref: string }[] }).anyOf?.map((entry) => entry.$ref),
    ['#/components/schemas/TokenResponse', '#/components/schemas/MfaRequired'],
  );
  t.equal(
    operation('POST /auth/mfa/verify').responses['200']?.content?.['application/json']?.schema.$ref,
    '#/components/schemas/TokenResponse',
  );
  const serialized = JSON.stringify(document.paths);
  t.notOk(serialized.includes('"statusCode"'), 'no inline copy of the error schema in the paths');
});

t.test('query parameters with a default are optional', async (t) => {
  for (const label of [
    'GET /auth/sessions',
    'GET /users/me/events',
    'GET /users',
    'GET /auth/revocations',
    'GET /auth/passkeys',
  ]) {
    const limit = operation(label).parameters?.find((parameter) => parameter.name === 'limit');
    t.equal(limit?.required ?? false, false, `${label}: limit`);
  }
});

t.test('the logout and refresh bodies are optional, the others required', async (t) => {
  for (const { label, operation } of operations) {
    if (!operation.requestBody) continue;
    const optional = label === 'POST /auth/logout' || label === 'POST /auth/refresh';
    t.equal(operation.requestBody.required, !optional, label);
  }
});

t.test('security: none on public routes, bearer or cookie on protected ones', async (t) => {
  for (const { label, operation } of operations) {
    if (PUBLIC.includes(label)) t.same(operation.security, [], label);
    else if (label === 'GET /auth/revocations') t.same(operation.security, [{ revocationFeedAuth: [] }], label);
    else t.same(operation.security, [{ bearerAuth: [] }, { cookieAuth: [] }], label);
  }
});

t.test('X-CSRF-Token is an optional header on the cookie-authenticated unsafe routes', async (t) => {
  for (const { label, operation } of operations) {
    const csrf = operation.parameters?.find(
      (parameter) => parameter.in === 'header' && /x-csrf-token/i.test(parameter.name),
    );
    if (CSRF.includes(label)) t.equal(csrf?.required ?? false, false, `${label}: optional X-CSRF-Token`);
    if (CSRF.includes(label)) t.ok(csrf, `${label}: has X-CSRF-Token`);
    else t.notOk(csrf, `${label}: no X-CSRF-Token`);
  }
});

t.test('every response is described, with its headers', async (t) => {
  for (const { label, operation } of operations) {
    for (const [status, response] of Object.entries(operation.responses)) {
      t.not(response.description, 'Default Response', `${label} ${status}: described`);
      if (status === '401') t.ok(response.headers?.['WWW-Authenticate'], `${label} 401: WWW-Authenticate`);
      if (status === '429') t.ok(response.headers?.['Retry-After'], `${label} 429: Retry-After`);
      if (status >= '400' && status !== '503' && !label.startsWith('GET /health')) {
        t.equal(
          response.content?.['application/json']?.schema.$ref,
          '#/components/schemas/Error',
          `${label} ${status}`,
        );
      }
    }
  }
  for (const label of ['POST /auth/login', 'POST /auth/refresh', 'POST /auth/passkeys/login']) {
    t.ok(operation(label).responses['200']?.headers?.['Set-Cookie'], `${label} 200: Set-Cookie`);
  }
  for (const label of ['POST /auth/logout', 'POST /auth/logout-all']) {
    t.ok(operation(label).responses['204']?.headers?.['Set-Cookie'], `${label} 204: Set-Cookie`);
  }
});

t.test('redocly lint --extends recommended: no errors', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-openapi-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'openapi.json');
  await writeFile(file, JSON.stringify(document, null, 2));
  const { code, output } = await redoclyLint(file, ['--format', 'summary']);
  t.equal(code, 0, 'redocly exits 0');
  t.notMatch(output, /^error\s/m, 'no error lines');
  t.comment(
    output
      .split('\n')
      .filter((line) => /^(error|warning)\s/.test(line))
      .join('\n'),
  );
});
