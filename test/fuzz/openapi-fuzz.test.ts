// Property test over the live OpenAPI document: hostile bodies, queries, path parameters, headers and cookies at every
// route, on real Postgres and Redis. Each answer must be a status the operation documents (or a 404/413/415/429 any
// route may give), every 4xx must have the contract's error shape with a catalogue code, and nothing is a 5xx.
import { STATUS_CODES } from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { errorCodes } from '../../src/errors.js';
import { loginAdmin } from '../helpers/admin.js';
import { buildTestApp } from '../helpers/app.js';
import { unsigned } from '../helpers/forge.js';
import {
  COOKIES,
  type LoggedIn,
  loginWithCookies,
  register,
  registerAndLogin,
  STRONG_PASSWORD,
} from '../helpers/session-flow.js';

const FEED_TOKEN = 'f'.repeat(40);
// About 2,500 cases in all, so the file fits the suite's time budget; the operations that hash or verify a
// password (argon2id) get fewer. FUZZ_RUNS=<n> sets the cases per operation for a deeper run.
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const ARGON2_RUNS = Math.ceil(RUNS * 0.3);
// Reproducible by default; FUZZ_SEED=<n> explores elsewhere (a failure prints its seed and path to replay).
const SEED = Number(process.env.FUZZ_SEED ?? 20_260_101);

const { app } = await buildTestApp(t, { env: { REVOCATION_FEED_TOKEN: FEED_TOKEN } });

interface JsonSchema {
  type?: string | string[];
  format?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  required?: string[];
}
interface Operation {
  method: string;
  path: string;
  operationId?: string;
  parameters?: { in: string; name: string; schema?: JsonSchema }[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
  responses: Record<string, unknown>;
  security?: unknown[];
}

const document = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as {
  paths: Record<string, Record<string, Omit<Operation, 'method' | 'path'>>>;
};
const operations: Operation[] = Object.entries(document.paths).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, operation]) => ({ ...operation, method: method.toUpperCase(), path })),
);
t.ok(operations.length >= 15, `the document lists the routes (${operations.length})`);

// Strings that have broken services before.
const hostileStrings = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\u0001',
  '\u001f',
  '\u007f',
  '\r\n',
  '%00',
  '%zz',
  '%',
  '../../etc/passwd',
  "' OR 1=1 --",
  '"; DROP TABLE users; --',
  '\ud800',
  '\udfff\ud800',
  '💥',
  'ǅ',
  '\u202e',
  '<script>alert(1)</script>',
  '$' + '{jndi:ldap://x}',
  '__proto__',
  'constructor',
  'null',
  'undefined',
  'NaN',
  '-1',
  '0',
  '1e309',
  '9'.repeat(400),
  'x'.repeat(300),
  'x'.repeat(20_000),
  '+275760-09-13T00:00:00.000Z',
  Buffer.from(JSON.stringify(['+275760-09-13T00:00:00.000Z', '00000000-0000-4000-8000-000000000000'])).toString(
    'base64url',
  ),
  Buffer.from(JSON.stringify(['+099999-01-01T00:00:00.000Z', '00000000-0000-4000-8000-000000000000'])).toString(
    'base64url',
  ),
  Buffer.from('[1,2]').toString('base64url'),
  '00000000-0000-0000-0000-000000000000',
  'urn:uuid:00000000-0000-4000-8000-000000000000',
];
const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)) });
const anyString = fc.oneof(
  fc.constantFrom(...hostileStrings),
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  printable,
);
const anyNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1, 100, 101, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308),
);
const anyJson = fc.jsonValue({ maxDepth: 3 });

/** A value for a schema: usually of its type (so validation is passed and the handler runs), sometimes anything. */
function valueFor(schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 4) return anyJson;
  const typed = typedValue(schema, depth);
  return fc.oneof(
    { weight: 4, arbitrary: typed },
    { weight: 1, arbitrary: anyString },
    { weight: 1, arbitrary: anyJson },
  );
}

function typedValue(schema: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union && union.length > 0) return fc.oneof(...union.map((member) => valueFor(member, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      if (schema.format === 'email') return fc.oneof(fc.emailAddress(), anyString);
      if (schema.format === 'uuid') return fc.oneof(fc.uuid(), anyString);
      return anyString;
    case 'integer':
    case 'number': {
      const { minimum, maximum } = schema as { minimum?: number; maximum?: number };
      return fc.oneof({ weight: 2, arbitrary: fc.integer({ min: minimum ?? -1000, max: maximum ?? 1000 }) }, anyNumber);
    }
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(valueFor(schema.items, depth + 1), { maxLength: 5 });
    case 'object': {
      const properties = Object.fromEntries(
        Object.entries(schema.properties ?? {}).map(([name, property]) => [name, valueFor(property, depth + 1)]),
      );
      return fc
        .tuple(
          fc.record(properties, { requiredKeys: [] }),
          fc.dictionary(fc.oneof(anyString, fc.constantFrom('__proto__', 'isAdmin', 'roles')), anyJson, {
            maxKeys: 1,
          }),
          fc.boolean(),
        )
        .map(([known, extra, addExtra]) => (addExtra ? { ...known, ...extra } : known));
    }
    default:
      return anyJson;
  }
}

interface Credentials {
  user: LoggedIn;
  admin: LoggedIn;
  cookies: Record<string, string>;
  ids: string[];
}

/** A fresh user (body and cookie logins) and admin, so one operation's revocations never starve the next. */
async function credentials(): Promise<Credentials> {
  const user = await registerAndLogin(app);
  const admin = await loginAdmin(app);
  const cookieLogin = await loginWithCookies(app, user.account);
  const other = await register(app);
  return {
    user,
    admin,
    cookies: cookieLogin.cookies,
    ids: [user.account.id, admin.account.id, user.sessionId, other.id, cookieLogin.sessionId],
  };
}

function authorization(creds: Credentials): fc.Arbitrary<string | undefined> {
  const forged = unsigned({ alg: 'none', typ: 'at+jwt' }, { sub: creds.user.account.id, roles: ['admin'] });
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(`Bearer ${creds.user.accessToken}`) },
    { weight: 3, arbitrary: fc.constant(`Bearer ${creds.admin.accessToken}`) },
    { weight: 1, arbitrary: fc.constant(`Bearer ${FEED_TOKEN}`) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant(`bearer ${forged}`) },
    { weight: 1, arbitrary: printable.map((value) => `Bearer ${value}`) },
    { weight: 1, arbitrary: printable },
    { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Bearer ${'a.'.repeat(3000)}`) },
  );
}

function cookieHeader(creds: Credentials): fc.Arbitrary<string | undefined> {
  const jar = (pairs: Record<string, string>) =>
    Object.entries(pairs)
      .map(([name, value]) => `${name}=${value}`)
      .join('; ');
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constant(jar(creds.cookies)) },
    { weight: 1, arbitrary: fc.constant(jar({ [COOKIES.access]: creds.user.accessToken })) },
    { weight: 1, arbitrary: printable },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(COOKIES.access, COOKIES.refresh, COOKIES.csrf, 'x'), printable)
        .map(([name, value]) => `${name}=${value.replaceAll(';', '')}`),
    },
  );
}

const contentTypes = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      '*/*',
      '',
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const asText = (value: unknown): string => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

/** Bodies a real client would send, so the handlers behind validation run too. */
function validBodies(path: string, creds: Credentials): unknown[] {
  const { email, password } = creds.user.account;
  const refreshToken = creds.user.refreshToken;
  switch (path) {
    case '/auth/register':
      return [
        { email: `fuzz-${Math.random().toString(36).slice(2)}@example.com`, password: STRONG_PASSWORD, name: 'F' },
      ];
    case '/auth/login':
      return [
        { email, password },
        { email, password, transport: 'cookie' },
      ];
    case '/auth/refresh':
    case '/auth/logout':
      return [{ refreshToken }, { refreshToken, transport: 'cookie' }, {}];
    case '/auth/password':
      return [{ currentPassword: password, newPassword: password }];
    case '/users/{id}/roles':
      return [{ roles: ['user'] }, { roles: ['user', 'admin'] }];
    default:
      return [{}];
  }
}

/** Percent-encodes every byte of the UTF-8 form (encodeURIComponent throws on a lone surrogate). */
function percentEncode(value: string): string {
  return [...Buffer.from(value)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
}

function pathValue(creds: Credentials): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...creds.ids) },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 2, arbitrary: anyString.map(percentEncode) },
    { weight: 1, arbitrary: fc.constantFrom('%zz', '%00', '%', '..', '.', 'a'.repeat(150), '%2F', '%E0%A4%A') },
  );
}

function requestFor(operation: Operation, creds: Credentials) {
  const parameters = operation.parameters ?? [];
  const pathParams = parameters.filter((parameter) => parameter.in === 'path');
  const queryParams = parameters.filter((parameter) => parameter.in === 'query');
  const bodySchema = operation.requestBody?.content?.['application/json']?.schema;
  const hasBody = operation.method !== 'GET';
  return fc.record({
    path: fc.tuple(...pathParams.map(() => pathValue(creds))).map((values) => {
      let path = operation.path;
      pathParams.forEach((parameter, index) => {
        path = path.replace(`{${parameter.name}}`, values[index] as string);
      });
      return path;
    }),
    query: fc.tuple(
      fc.record(
        Object.fromEntries(queryParams.map((parameter) => [parameter.name, valueFor(parameter.schema).map(asText)])),
        { requiredKeys: [] },
      ),
      fc.dictionary(printable, anyString, { maxKeys: 2 }),
      fc.boolean().chain((extra) => (extra ? fc.boolean() : fc.constant(false))),
    ),
    body: hasBody
      ? fc.oneof(
          { weight: 5, arbitrary: valueFor(bodySchema).map((value) => JSON.stringify(value) ?? 'null') },
          {
            weight: 3,
            arbitrary: fc.constantFrom(...validBodies(operation.path, creds)).map((body) => JSON.stringify(body)),
          },
          { weight: 1, arbitrary: anyString },
          {
            weight: 1,
            arbitrary: fc.constantFrom('{', '{"a":1,"a":2}', '{"__proto__":{"x":1}}', '[]', 'x'.repeat(17_000)),
          },
          { weight: 1, arbitrary: fc.constant(undefined) },
        )
      : fc.constant(undefined),
    contentType: hasBody ? contentTypes : fc.constant(undefined),
    authorization: authorization(creds),
    cookie: cookieHeader(creds),
    csrf: fc.oneof(fc.constant(undefined), fc.constant(creds.cookies[COOKIES.csrf] ?? ''), printable),
    extraHeader: fc.option(
      fc.tuple(
        fc.constantFrom('x-forwarded-for', 'user-agent', 'accept', 'origin', 'x-request-id', 'accept-encoding'),
        printable,
      ),
    ),
  });
}

const allowedEverywhere = new Set([404, 413, 415, 429]);
// Found by this test, to be fixed in the route's schema (not in this file's scope): remove an entry once documented.
// POST /auth/logout-all parses a JSON body it does not declare, so a malformed one is 400, absent from `responses`.
const knownGaps: Record<string, number[]> = {};
const errorKeys = ['code', 'error', 'message', 'statusCode'];

for (const [index, operation] of operations.entries()) {
  const label = `${operation.method} ${operation.path}`;
  t.test(label, async (t) => {
    const creds = await credentials();
    const documented = new Set(Object.keys(operation.responses).map(Number));
    const secured = (operation.security?.length ?? 0) > 0;
    const heavy = ['/auth/login', '/auth/register', '/auth/password'].includes(operation.path);
    const failures: string[] = [];
    const seen = new Map<number, number>();
    await fc
      .assert(
        fc.asyncProperty(requestFor(operation, creds), async (input) => {
          const [knownQuery, extraQuery, addExtra] = input.query;
          const query = new URLSearchParams({ ...(addExtra ? extraQuery : {}), ...knownQuery } as Record<
            string,
            string
          >).toString();
          const headers: Record<string, string> = {};
          if (input.contentType !== undefined) headers['content-type'] = input.contentType;
          if (input.authorization !== undefined) headers.authorization = input.authorization;
          if (input.cookie !== undefined) headers.cookie = input.cookie;
          if (input.csrf !== undefined) headers['x-csrf-token'] = input.csrf;
          if (input.extraHeader) headers[input.extraHeader[0]] = input.extraHeader[1];
          const response = await app.inject({
            method: operation.method as 'GET',
            url: query ? `${input.path}?${query}` : input.path,
            headers,
            ...(input.body !== undefined ? { payload: input.body } : {}),
          });
          const status = response.statusCode;
          seen.set(status, (seen.get(status) ?? 0) + 1);
          const where = `${label} → ${status} ${response.body.slice(0, 300)}`;
          if (status >= 500) throw new Error(`5xx: ${where}`);
          const allowed =
            documented.has(status) ||
            allowedEverywhere.has(status) ||
            knownGaps[label]?.includes(status) ||
            (secured && (status === 401 || status === 403));
          if (!allowed) throw new Error(`undocumented status: ${where}`);
          if (status >= 400) {
            let body: Record<string, unknown>;
            try {
              body = response.json();
            } catch {
              throw new Error(`error body is not JSON: ${where}`);
            }
            if (JSON.stringify(Object.keys(body).sort()) !== JSON.stringify(errorKeys)) {
              throw new Error(`error shape: ${where}`);
            }
            if (!errorCodes.includes(body.code as never)) throw new Error(`not a catalogue code: ${where}`);
            if (body.statusCode !== status || body.error !== STATUS_CODES[status] || typeof body.message !== 'string') {
              throw new Error(`error members: ${where}`);
            }
          }
        }),
        { numRuns: heavy ? ARGON2_RUNS : RUNS, seed: SEED + index, endOnFailure: true },
      )
      .catch((error: Error) => failures.push(error.message));
    t.same(failures, [], `${label}: every answer documented, in the error shape, never 5xx`);
    t.comment(
      `${label}: ${[...seen]
        .sort(([a], [b]) => a - b)
        .map(([status, count]) => `${status}×${count}`)
        .join(' ')}`,
    );
  });
}
