// Session flows for tests: register and log in through the real routes, read cookies and token claims back.
import { randomBytes } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { App } from '../../src/app.js';
import { refreshTokens, securityEvents, sessions } from '../../src/db/schema.js';
import { sha256 } from '../../src/lib/ids.js';

export type Response = LightMyRequestResponse;
export type Headers = Record<string, string>;

export const STRONG_PASSWORD = 'correct horse battery staple';

/** The cookie names with COOKIE_SECURE=true (the default). */
export const COOKIES = {
  access: '__Host-access_token',
  refresh: '__Secure-refresh_token',
  csrf: '__Host-csrf_token',
} as const;

export const uniqueEmail = (label = 'user') => `${label}-${randomBytes(5).toString('hex')}@example.com`;

export const bearer = (token: string): Headers => ({ authorization: `Bearer ${token}` });

export interface Account {
  id: string;
  email: string;
  password: string;
}

export interface LoggedIn {
  account: Account;
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  response: Response;
}

export interface CookieLogin {
  account: Account;
  /** The three cookies' values, by name (see COOKIES). */
  cookies: Record<string, string>;
  access: string;
  refresh: string;
  csrf: string;
  sessionId: string;
  response: Response;
}

export async function register(app: App, options: { email?: string; password?: string } = {}): Promise<Account> {
  const email = options.email ?? uniqueEmail();
  const password = options.password ?? STRONG_PASSWORD;
  const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password } });
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.statusCode} ${response.body}`);
  return { id: response.json().user.id, email, password };
}

export function loginRequest(
  app: App,
  email: string,
  password: string,
  options: { transport?: 'body' | 'cookie'; headers?: Headers } = {},
): Promise<Response> {
  return app.inject({
    method: 'POST',
    url: '/auth/login',
    headers: options.headers,
    payload: options.transport ? { email, password, transport: options.transport } : { email, password },
  });
}

/** Logs an account in with the body transport: a new session. */
export async function login(app: App, account: Account, headers: Headers = {}): Promise<LoggedIn> {
  const response = await loginRequest(app, account.email, account.password, { headers });
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`);
  const body = response.json();
  return {
    account,
    accessToken: body.accessToken,
    refreshToken: body.refreshToken,
    sessionId: sessionIdOf(body.accessToken),
    response,
  };
}

/** Logs an account in with the cookie transport. */
export async function loginWithCookies(app: App, account: Account): Promise<CookieLogin> {
  const response = await loginRequest(app, account.email, account.password, { transport: 'cookie' });
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`);
  const cookies = cookieValues(response);
  const access = cookies[COOKIES.access];
  const refresh = cookies[COOKIES.refresh];
  const csrf = cookies[COOKIES.csrf];
  if (!access || !refresh || !csrf) throw new Error(`login set no session cookies: ${response.headers['set-cookie']}`);
  return { account, cookies, access, refresh, csrf, sessionId: sessionIdOf(access), response };
}

export async function registerAndLogin(app: App, options: { email?: string; password?: string } = {}) {
  return login(app, await register(app, options));
}

/** The cookies a response set, by name. */
export function cookiesOf(response: Response): Record<string, Response['cookies'][number]> {
  return Object.fromEntries(response.cookies.map((cookie) => [cookie.name, cookie]));
}

export function cookieValues(response: Response): Record<string, string> {
  return Object.fromEntries(response.cookies.map((cookie) => [cookie.name, cookie.value]));
}

/** The claims of a JWT, unverified. */
export function claimsOf(token: string): Record<string, unknown> & {
  sub: string;
  sid: string;
  jti: string;
  iat: number;
  exp: number;
  roles: string[];
} {
  const payload = token.split('.')[1];
  if (payload === undefined) throw new Error(`not a JWT: ${token}`);
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
}

export const sessionIdOf = (accessToken: string) => claimsOf(accessToken).sid;

export function refresh(app: App, refreshToken: string, extra: Partial<InjectOptions> = {}): Promise<Response> {
  return app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken }, ...extra });
}

/** GET /users/me with a Bearer token: the probe for "is this access token accepted". */
export function me(app: App, accessToken: string): Promise<Response> {
  return app.inject({ method: 'GET', url: '/users/me', headers: bearer(accessToken) });
}

export async function sessionRow(app: App, sessionId: string) {
  const [row] = await app.db.select().from(sessions).where(eq(sessions.id, sessionId));
  return row;
}

export async function refreshTokenRow(app: App, refreshToken: string) {
  const [row] = await app.db
    .select()
    .from(refreshTokens)
    .where(eq(refreshTokens.tokenHash, sha256(refreshToken)));
  return row;
}

export async function eventsOf(app: App, userId: string, type?: string) {
  return app.db
    .select()
    .from(securityEvents)
    .where(and(eq(securityEvents.userId, userId), type ? eq(securityEvents.type, type as never) : undefined));
}

/** The error code of a response (undefined for a non-error body). */
export function codeOf(response: Response): string | undefined {
  try {
    return response.json().code;
  } catch {
    return undefined;
  }
}

/** The subset of a tap Test the shared assertions use (messages required, so any tap Test fits). */
export interface Asserts {
  ok(value: unknown, message: string): unknown;
  equal(found: unknown, wanted: unknown, message: string): unknown;
  match(found: unknown, pattern: unknown, message: string): unknown;
  notMatch(found: unknown, pattern: unknown, message: string): unknown;
}

export const REALM = 'Bearer realm="http://auth.test"';
const ACCESS_TOKEN_REJECTIONS = new Set(['TOKEN_INVALID', 'TOKEN_EXPIRED', 'TOKEN_REVOKED']);

/**
 * The contract's error: status, code, the one body shape, and on a 401 the Bearer challenge, with
 * `error="invalid_token"` exactly when an access token was rejected.
 */
export function assertError(t: Asserts, response: Response, statusCode: number, code: string, label = ''): void {
  const prefix = label ? `${label}: ` : '';
  t.equal(response.statusCode, statusCode, `${prefix}status ${statusCode}`);
  t.equal(codeOf(response), code, `${prefix}code ${code}`);
  t.match(response.json(), { statusCode, code, error: String, message: String }, `${prefix}error shape`);
  if (statusCode === 401) {
    const challenge = response.headers['www-authenticate'];
    if (ACCESS_TOKEN_REJECTIONS.has(code)) {
      t.equal(challenge, `${REALM}, error="invalid_token"`, `${prefix}challenge names invalid_token`);
    } else {
      t.equal(challenge, REALM, `${prefix}bare Bearer challenge`);
    }
  }
}
