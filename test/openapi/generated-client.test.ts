// A client generated from the live OpenAPI document (openapi-typescript + openapi-fetch) type-checks as written
// under strict settings, and drives register, login, the caller, sessions, refresh, logout and an error branch
// against the real app listening on a port.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript';
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { STRONG_PASSWORD, uniqueEmail } from '../helpers/session-flow.js';
import { runTool } from './run-tool.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Git-ignored; each run writes a folder of its own there and removes it.
const generatedRoot = path.join(root, 'test/openapi/.generated');

// The program a client developer would write: no casts, no `any`, narrowing on the error code.
const clientProgram = `
import createClient from 'openapi-fetch';
import type { components, paths } from './schema.js';

type ErrorCode = components['schemas']['Error']['code'];

export interface Outcome {
  userId: string;
  meEmail: string;
  sessionCount: number;
  currentSessionId: string | undefined;
  refreshedUserId: string;
  logoutStatus: number;
  emptyBodyLogoutStatus: number;
  reuseCode: ErrorCode | undefined;
  wrongPasswordCode: ErrorCode | undefined;
  wrongPasswordMessage: string | undefined;
}

export async function run(baseUrl: string, email: string, password: string): Promise<Outcome> {
  const client = createClient<paths>({ baseUrl });

  const registered = await client.POST('/auth/register', { body: { email, password, name: 'Generated Client' } });
  if (!registered.data) throw new Error(\`register: \${registered.response.status}\`);
  const userId: string = registered.data.user.id;

  const login = await client.POST('/auth/login', { body: { email, password, transport: 'body' } });
  if (login.error) throw new Error(\`login: \${login.error.code}\`);
  // Two outcomes: the token pair, or the second step when TOTP is on. The client narrows on \`mfaRequired\`.
  if ('mfaRequired' in login.data) {
    const step = await client.POST('/auth/mfa/verify', { body: { mfaToken: login.data.mfaToken, code: '000000' } });
    throw new Error(\`login: a second step was asked (\${step.error?.code ?? 'verified'})\`);
  }
  const { accessToken, refreshToken, expiresIn } = login.data;
  if (!accessToken || !refreshToken || expiresIn <= 0) throw new Error('login: no token pair');
  const auth = { Authorization: \`Bearer \${accessToken}\` };

  const me = await client.GET('/users/me', { headers: auth });
  if (!me.data) throw new Error(\`me: \${me.error.code}\`);

  // \`limit\` has a default: the query may be omitted, or given.
  const sessions = await client.GET('/auth/sessions', { headers: auth });
  if (!sessions.data) throw new Error(\`sessions: \${sessions.error.code}\`);
  const page = await client.GET('/auth/sessions', { headers: auth, params: { query: { limit: 1 } } });
  if (page.error) throw new Error(\`sessions page: \${page.error.code}\`);
  const current = sessions.data.items.find((session) => session.current);

  const refreshed = await client.POST('/auth/refresh', { body: { refreshToken } });
  if (!refreshed.data) throw new Error(\`refresh: \${refreshed.error.code}\`);
  const { refreshToken: nextRefreshToken, accessToken: nextAccessToken } = refreshed.data;
  if (!nextRefreshToken || !nextAccessToken) throw new Error('refresh: no token pair');

  const logout = await client.POST('/auth/logout', { body: { refreshToken: nextRefreshToken } });
  if (logout.error) throw new Error(\`logout: \${logout.error.code}\`);

  // The body is optional: an access token alone logs out, even with a JSON content type and no body.
  const second = await client.POST('/auth/login', { body: { email, password } });
  if (!second.data || 'mfaRequired' in second.data || !second.data.accessToken) throw new Error('second login');
  const emptyBodyLogout = await client.POST('/auth/logout', {
    headers: { Authorization: \`Bearer \${second.data.accessToken}\`, 'Content-Type': 'application/json' },
  });

  // The rotated refresh token again, long after its reuse interval would be reuse; here the session is gone.
  const again = await client.POST('/auth/refresh', { body: { refreshToken: nextRefreshToken } });
  const reuseCode: ErrorCode | undefined = again.error?.code;

  const wrong = await client.POST('/auth/login', { body: { email, password: \`\${password}!\` } });
  let wrongPasswordCode: ErrorCode | undefined;
  let wrongPasswordMessage: string | undefined;
  if (wrong.error && wrong.error.code === 'INVALID_CREDENTIALS') {
    wrongPasswordCode = wrong.error.code;
    wrongPasswordMessage = wrong.error.message;
  }

  return {
    userId,
    meEmail: me.data.user.email,
    sessionCount: sessions.data.items.length,
    currentSessionId: current?.id,
    refreshedUserId: refreshed.data.user.id,
    logoutStatus: logout.response.status,
    emptyBodyLogoutStatus: emptyBodyLogout.response.status,
    reuseCode,
    wrongPasswordCode,
    wrongPasswordMessage,
  };
}
`;

interface Outcome {
  userId: string;
  meEmail: string;
  sessionCount: number;
  currentSessionId: string | undefined;
  refreshedUserId: string;
  logoutStatus: number;
  emptyBodyLogoutStatus: number;
  reuseCode: string | undefined;
  wrongPasswordCode: string | undefined;
  wrongPasswordMessage: string | undefined;
}

/** Writes the generated types and the program into a fresh folder; returns it. */
async function writeClient(document: OpenAPI3): Promise<string> {
  await mkdir(generatedRoot, { recursive: true });
  const dir = await mkdtemp(path.join(generatedRoot, 'client-'));
  await writeFile(path.join(dir, 'schema.ts'), astToString(await openapiTS(document)));
  await writeFile(path.join(dir, 'client.ts'), clientProgram);
  return dir;
}

/** `tsc --noEmit` with strict settings over the folder; resolves with its exit code and output. */
function typecheck(dir: string): Promise<{ code: number | null; output: string }> {
  const args = [
    '--noEmit',
    '--strict',
    '--noUncheckedIndexedAccess',
    '--exactOptionalPropertyTypes',
    '--target',
    'ES2022',
    '--lib',
    'ES2023,DOM',
    '--module',
    'NodeNext',
    '--moduleResolution',
    'NodeNext',
    '--skipLibCheck',
    '--types',
    'node',
    path.join(dir, 'schema.ts'),
    path.join(dir, 'client.ts'),
  ];
  return runTool('tsc', args);
}

const { app } = await buildTestApp(t);
const document = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as OpenAPI3;
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('not listening on a TCP port');
const baseUrl = `http://127.0.0.1:${address.port}`;

t.test('the generated client type-checks and drives the real app', async (t) => {
  const dir = await writeClient(document);
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const { code, output } = await typecheck(dir);
  t.equal(code, 0, 'tsc --noEmit --strict accepts the generated types and the program');
  if (code !== 0) t.comment(output);

  const { run } = (await import(pathToFileURL(path.join(dir, 'client.ts')).href)) as {
    run: (baseUrl: string, email: string, password: string) => Promise<Outcome>;
  };
  const email = uniqueEmail('generated');
  const outcome = await run(baseUrl, email, STRONG_PASSWORD);
  t.match(outcome.userId, /^[0-9a-f-]{36}$/, 'register returned the user');
  t.equal(outcome.meEmail, email, '/users/me is the caller');
  t.equal(outcome.sessionCount, 1, 'one live session');
  t.ok(outcome.currentSessionId, 'the current session is flagged');
  t.equal(outcome.refreshedUserId, outcome.userId, 'refresh returned the same user');
  t.equal(outcome.logoutStatus, 204, 'logout by refresh token');
  t.equal(outcome.emptyBodyLogoutStatus, 204, 'logout by access token alone, empty JSON body');
  t.ok(outcome.reuseCode?.startsWith('REFRESH_TOKEN_'), `a logged-out refresh token is refused (${outcome.reuseCode})`);
  t.equal(outcome.wrongPasswordCode, 'INVALID_CREDENTIALS', 'the error branch narrows on the code');
  t.equal(outcome.wrongPasswordMessage, 'Invalid email or password');
});

t.test('the compile step fails when the document regresses', async (t) => {
  // A `limit` marked required, as the generator once wrote it: the program's bare sessions call must not compile.
  const regressed = structuredClone(document) as unknown as {
    paths: Record<string, Record<string, { parameters?: { name: string; in: string; required?: boolean }[] }>>;
  };
  const limit = regressed.paths['/auth/sessions']?.get?.parameters?.find((parameter) => parameter.name === 'limit');
  if (!limit) throw new Error('no limit parameter on GET /auth/sessions');
  limit.required = true;
  const dir = await writeClient(regressed as unknown as OpenAPI3);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { code, output } = await typecheck(dir);
  t.not(code, 0, 'tsc refuses the program');
  t.match(output, /client\.ts/, 'the error is in the client program');
});
