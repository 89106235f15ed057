// The resource-server kit (examples/resource-server) against the real auth service over HTTP: real tokens accepted,
// forged ones refused, the admin role enforced, a rotated-in key picked up by a JWKS refetch with no restart of the
// resource server, and logout, refresh-token reuse and a role change reaching it through the revocation feed
// within a poll.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader } from 'jose';
import t, { type Test } from 'tap';
import { buildServer } from '../../examples/resource-server/server.js';
import { writeNewKey } from '../../src/keys/key-ring.js';
import { FEED_SETTLE_MS } from '../../src/modules/revocations/revocations.routes.js';
import { loginAdmin, putRoles } from '../helpers/admin.js';
import { buildTestApp, makeKeysDir, type TestApp } from '../helpers/app.js';
import {
  attackerKey,
  decodeToken,
  mintWithOurKey,
  ourKey,
  signHs256,
  signRsa,
  tamperClaims,
  unsigned,
  validClaims,
} from '../helpers/forge.js';
import { freePort, repoRoot } from '../helpers/server-process.js';
import { bearer, codeOf, login, type Response, refresh, register, registerAndLogin } from '../helpers/session-flow.js';

// The restarted auth service of the rotation test must outlive that subtest: its teardown goes on the file's test.
const root = t;
const FEED_TOKEN = randomBytes(32).toString('base64url');
const POLL_INTERVAL_MS = 500;
const JWKS_COOLDOWN_MS = 200;

// The auth service listens on a port chosen first, so its ISSUER is its real URL.
const port = await freePort();
const issuer = `http://127.0.0.1:${port}`;
const keysDir = await makeKeysDir(t);
const redisKeyPrefix = `test:rs:${randomBytes(6).toString('hex')}:`;
const authEnv = { ISSUER: issuer, REVOCATION_FEED_TOKEN: FEED_TOKEN, REFRESH_REUSE_INTERVAL: '0' };
let auth: TestApp = await buildTestApp(t, { env: authEnv, keysDir, redisKeyPrefix });
await auth.app.listen({ port, host: '127.0.0.1' });

const rs = await buildServer({
  logger: false,
  auth: {
    issuer,
    audience: issuer,
    jwksUrl: `${issuer}/.well-known/jwks.json`,
    jwksCooldownMs: JWKS_COOLDOWN_MS,
    revocationFeed: {
      url: `${issuer}/auth/revocations`,
      token: FEED_TOKEN,
      pollIntervalMs: POLL_INTERVAL_MS,
      // Generous: the rotation step restarts the auth service under the resource server.
      maxStalenessMs: 15_000,
    },
  },
});
t.teardown(() => rs.close());

const get = (url: string, token?: string) =>
  rs.inject({ method: 'GET', url, headers: token === undefined ? {} : bearer(token) });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The contract's error shape, with the challenge naming our issuer as realm (and invalid_token for a bad token). */
function refused(t: Test, response: Response, statusCode: number, code: string, label: string): void {
  t.equal(response.statusCode, statusCode, `${label}: status ${statusCode}`);
  t.equal(codeOf(response), code, `${label}: code ${code}`);
  t.match(response.json(), { statusCode, code, error: String, message: String }, `${label}: error shape`);
  if (statusCode === 401 && code !== 'MFA_REQUIRED') {
    const realm = `Bearer realm="${issuer}"`;
    const challenge = code === 'TOKEN_MISSING' ? realm : `${realm}, error="invalid_token"`;
    t.equal(response.headers['www-authenticate'], challenge, `${label}: WWW-Authenticate`);
  }
}

const challengeOf = (response: Response) => response.headers['www-authenticate'];

/** Polls the resource server until `token` is refused, bounded by the settle delay plus a few poll intervals. */
async function waitUntilRefused(t: Test, token: string, label: string): Promise<number> {
  const started = Date.now();
  const deadline = started + FEED_SETTLE_MS + 4 * POLL_INTERVAL_MS + 1_000;
  for (;;) {
    const response = await get('/me', token);
    if (response.statusCode !== 200) {
      refused(t, response, 401, 'TOKEN_REVOKED', label);
      return Date.now() - started;
    }
    if (Date.now() > deadline) {
      t.fail(`${label}: still accepted ${Date.now() - started} ms later`);
      return Date.now() - started;
    }
    await sleep(50);
  }
}

t.test('a real token is accepted; no token is 401 TOKEN_MISSING', async (t) => {
  const session = await registerAndLogin(auth.app);
  const me = await get('/me', session.accessToken);
  t.equal(me.statusCode, 200, 'accepted');
  t.strictSame(me.json(), { sub: session.account.id, sid: session.sessionId, roles: ['user'] });
  refused(t, await get('/me'), 401, 'TOKEN_MISSING', 'no Authorization header');
  t.equal((await get('/health')).statusCode, 200, 'public routes stay public');
});

t.test('forged tokens are refused: 401 TOKEN_INVALID', async (t) => {
  const session = await registerAndLogin(auth.app);
  const base = {
    issuer,
    audience: issuer,
    subject: session.account.id,
    sessionId: session.sessionId,
    nowMs: Date.now(),
  };
  const good = await mintWithOurKey(keysDir, validClaims(base));
  t.equal((await get('/me', good)).statusCode, 200, 'control: a token minted with our key and valid claims passes');

  const { header, claims } = decodeToken(session.accessToken);
  const attacker = attackerKey();
  const jwks = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
  const forged: [string, string][] = [
    ['signed by another key under our kid', signRsa(header, claims, attacker.privateKey)],
    ['signed by another key under its own kid', signRsa({ ...header, kid: attacker.kid }, claims, attacker.privateKey)],
    [
      'another key named by an embedded jwk',
      signRsa({ ...header, kid: attacker.kid, jwk: attacker.publicJwk }, claims, attacker.privateKey),
    ],
    ['alg none', unsigned(header, claims)],
    ['HS256 keyed with our JWK', signHs256({ ...header, alg: 'HS256' }, claims, JSON.stringify(jwks.keys[0]))],
    [
      'HS256 keyed with our public key PEM',
      signHs256({ ...header, alg: 'HS256' }, claims, (await ourKey(keysDir)).publicKeyPem),
    ],
    ['tampered roles', tamperClaims(session.accessToken, { roles: ['admin'] })],
    ['typ JWT', await mintWithOurKey(keysDir, validClaims(base), { typ: 'JWT' })],
    ['no typ', await mintWithOurKey(keysDir, validClaims(base), { typ: undefined })],
    ['another issuer', await mintWithOurKey(keysDir, validClaims(base, { iss: 'http://evil.test' }))],
    ['another audience', await mintWithOurKey(keysDir, validClaims(base, { aud: 'http://other-service.test' }))],
    ['no sid', await mintWithOurKey(keysDir, validClaims(base, { sid: undefined }))],
    ['no ver', await mintWithOurKey(keysDir, validClaims(base, { ver: undefined }))],
    ['no amr', await mintWithOurKey(keysDir, validClaims(base, { amr: undefined }))],
    ['amr a string', await mintWithOurKey(keysDir, validClaims(base, { amr: 'mfa' }))],
    ['not a JWT', 'abc.def'],
  ];
  for (const [label, token] of forged) refused(t, await get('/me', token), 401, 'TOKEN_INVALID', label);

  const expired = await mintWithOurKey(keysDir, validClaims({ ...base, nowMs: Date.now() - 3_600_000 }));
  refused(t, await get('/me', expired), 401, 'TOKEN_EXPIRED', 'expired an hour ago');
});

t.test('the admin route: 403 FORBIDDEN without the admin role, 200 with it', async (t) => {
  const user = await registerAndLogin(auth.app);
  const denied = await get('/admin/reports', user.accessToken);
  refused(t, denied, 403, 'FORBIDDEN', 'a user');
  t.equal(denied.headers['www-authenticate'], `Bearer realm="${issuer}", error="insufficient_scope"`);
  const admin = await loginAdmin(auth.app);
  const allowed = await get('/admin/reports', admin.accessToken);
  t.equal(allowed.statusCode, 200, 'an admin');
  t.equal(allowed.json().requestedBy, admin.account.id);
  refused(t, await get('/admin/reports'), 401, 'TOKEN_MISSING', 'no token at all');
});

t.test('requireMfa: a password-only session is sent back for a second factor; otp or a passkey passes', async (t) => {
  const session = await registerAndLogin(auth.app);
  const passwordOnly = await get('/billing', session.accessToken);
  refused(t, passwordOnly, 401, 'MFA_REQUIRED', 'amr ["pwd"] (a real login without TOTP)');
  const stepUp = `Bearer realm="${issuer}", error="insufficient_user_authentication", error_description="a second factor is required"`;
  t.equal(challengeOf(passwordOnly), stepUp, 'RFC 9470 step-up challenge');
  const base = {
    issuer,
    audience: issuer,
    subject: session.account.id,
    sessionId: session.sessionId,
    nowMs: Date.now(),
  };
  for (const amr of [
    ['pwd', 'otp', 'mfa'],
    ['pop', 'mfa'],
  ]) {
    const response = await get('/billing', await mintWithOurKey(keysDir, validClaims(base, { amr })));
    t.equal(response.statusCode, 200, `amr ${JSON.stringify(amr)}`);
    t.same(response.json().amr, amr);
  }
  // `otp` without `mfa` is not a second factor by this rule; only the service's own `mfa` marks one.
  const otpOnly = await get('/billing', await mintWithOurKey(keysDir, validClaims(base, { amr: ['otp'] })));
  refused(t, otpOnly, 401, 'MFA_REQUIRED', 'amr ["otp"]');
  t.equal(challengeOf(otpOnly), stepUp, 'the same challenge');
  refused(t, await get('/billing'), 401, 'TOKEN_MISSING', 'no token at all');
});

t.test('logout (jti, sid) reaches the resource server within a poll of the feed showing it', async (t) => {
  const account = await register(auth.app);
  const session = await login(auth.app, account);
  const other = await login(auth.app, account);
  t.equal((await get('/me', session.accessToken)).statusCode, 200, 'accepted before logout');
  const out = await auth.app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.accessToken) });
  t.equal(out.statusCode, 204, 'logged out');
  const took = await waitUntilRefused(t, session.accessToken, 'the logged-out token');
  t.ok(took >= FEED_SETTLE_MS - 100, `not before the feed settles (${took} ms)`);
  t.equal((await get('/me', other.accessToken)).statusCode, 200, "the user's other session is unaffected");
});

t.test('refresh-token reuse (sid) reaches the resource server', async (t) => {
  const session = await registerAndLogin(auth.app);
  const first = await refresh(auth.app, session.refreshToken);
  t.equal(first.statusCode, 200, 'rotated');
  const rotated = first.json().accessToken as string;
  t.equal((await get('/me', rotated)).statusCode, 200, 'the rotated access token is accepted');
  const reused = await refresh(auth.app, session.refreshToken);
  t.equal(reused.statusCode, 401, 'the old refresh token again: 401');
  t.equal(codeOf(reused), 'REFRESH_TOKEN_REUSED', 'reuse detected');
  await waitUntilRefused(t, rotated, 'an access token of the session revoked for reuse');
});

t.test('a role change (sub, minVersion) revokes older tokens there; newer ones pass', async (t) => {
  const admin = await loginAdmin(auth.app);
  const user = await registerAndLogin(auth.app);
  t.equal((await get('/me', user.accessToken)).statusCode, 200, 'accepted before the change');
  const changed = await putRoles(auth.app, admin.accessToken, user.account.id, { roles: ['user', 'admin'] });
  t.equal(changed.statusCode, 200, 'promoted');
  await waitUntilRefused(t, user.accessToken, 'the token with the old roles');
  const fresh = await login(auth.app, user.account);
  const reports = await get('/admin/reports', fresh.accessToken);
  t.equal(reports.statusCode, 200, 'a token issued after the change (a higher ver) passes, with the new role');
});

t.test(
  'rotation: a new key signs after an auth restart and is accepted with no restart of the resource server',
  async (t) => {
    const before = await registerAndLogin(auth.app);
    const oldKid = decodeProtectedHeader(before.accessToken).kid;
    const key = await writeNewKey(keysDir, 'RS256', Date.now() - 1_000);
    t.not(key.kid, oldKid);
    // The auth service reads its key set at boot: restart it on the same port, database and Redis prefix.
    await auth.app.close();
    auth = await buildTestApp(root, { env: authEnv, keysDir, redisKeyPrefix, databaseUrl: auth.databaseUrl });
    await auth.app.listen({ port, host: '127.0.0.1' });

    const after = await login(auth.app, before.account);
    t.equal(decodeProtectedHeader(after.accessToken).kid, key.kid, 'the new key signs');
    await sleep(JWKS_COOLDOWN_MS + 50);
    const me = await get('/me', after.accessToken);
    t.equal(me.statusCode, 200, 'accepted: the unknown kid made the resource server refetch the JWKS');
    t.equal((await get('/me', before.accessToken)).statusCode, 200, 'a token of the old key still passes');
  },
);

t.test('fail closed: with the feed unreachable (or its token wrong), valid tokens get 503, never 200', async (t) => {
  const session = await registerAndLogin(auth.app);
  const closedPort = await freePort();
  for (const [label, url, token] of [
    ['feed unreachable', `http://127.0.0.1:${closedPort}/auth/revocations`, FEED_TOKEN],
    ['wrong feed token', `${issuer}/auth/revocations`, randomBytes(32).toString('base64url')],
  ] as const) {
    const blind = await buildServer({
      logger: false,
      auth: {
        issuer,
        audience: issuer,
        jwksUrl: `${issuer}/.well-known/jwks.json`,
        revocationFeed: { url, token, pollIntervalMs: 100, maxStalenessMs: 300 },
      },
    });
    t.teardown(() => blind.close());
    const response = await blind.inject({ method: 'GET', url: '/me', headers: bearer(session.accessToken) });
    refused(t, response, 503, 'SERVICE_UNAVAILABLE', label);
  }
});

t.test(
  'run directly: server.ts configured from its environment (AUTH_ISSUER, feed token, POLL_INTERVAL)',
  async (t) => {
    const session = await registerAndLogin(auth.app);
    const rsPort = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/resource-server/server.ts'], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        PORT: String(rsPort),
        AUTH_ISSUER: issuer,
        REVOCATION_FEED_TOKEN: FEED_TOKEN,
        POLL_INTERVAL: String(POLL_INTERVAL_MS),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGTERM');
      }
      await exited;
    });
    const base = `http://127.0.0.1:${rsPort}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`resource server exited:\n${output}`);
      if (Date.now() > deadline) throw new Error(`resource server did not listen within 30 s:\n${output}`);
      const health = await fetch(`${base}/health`).catch(() => undefined);
      if (health?.status === 200) break;
      await sleep(100);
    }
    const me = await fetch(`${base}/me`, { headers: bearer(session.accessToken) });
    t.equal(me.status, 200, 'a real token is accepted');
    const admin = await fetch(`${base}/admin/reports`, { headers: bearer(session.accessToken) });
    t.equal(admin.status, 403, 'the admin route needs admin');
  },
);
