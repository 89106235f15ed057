// The passkey sign-in budget (RATE_LIMIT_PASSKEY_PER_IP per minute per IP): both routes, /login/options and
// /login, draw on one budget; over it, 429 RATE_LIMITED with Retry-After; other IPs and other routes are untouched.
import t from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import { assertError, register } from '../../helpers/session-flow.js';

const { app } = await buildTestApp(t, { env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_PASSKEY_PER_IP: '4' } });

const options = (ip: string) =>
  app.inject({ method: 'POST', url: '/auth/passkeys/login/options', payload: {}, remoteAddress: ip });

const signIn = (ip: string, challengeId: string) =>
  app.inject({
    method: 'POST',
    url: '/auth/passkeys/login',
    remoteAddress: ip,
    payload: {
      challengeId,
      response: {
        id: 'AAAA',
        rawId: 'AAAA',
        type: 'public-key',
        response: { clientDataJSON: 'e30', authenticatorData: 'AAAA', signature: 'AAAA' },
        clientExtensionResults: {},
      },
    },
  });

t.test('both sign-in routes share one per-IP budget', async (t) => {
  const ip = '198.51.100.7';
  const first = await options(ip);
  t.equal(first.statusCode, 200);
  t.equal((await options(ip)).statusCode, 200);
  const garbage = await signIn(ip, first.json().challengeId);
  assertError(t, garbage, 401, 'PASSKEY_INVALID', 'a login counts');
  t.equal((await options(ip)).statusCode, 200, 'the fourth request');

  const limited = await options(ip);
  assertError(t, limited, 429, 'RATE_LIMITED', 'the fifth request, to options');
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After');
  assertError(t, await signIn(ip, first.json().challengeId), 429, 'RATE_LIMITED', 'and to login');

  t.equal((await options('198.51.100.8')).statusCode, 200, 'another IP has its own budget');
  const account = await register(app);
  const password = await app.inject({
    method: 'POST',
    url: '/auth/login',
    remoteAddress: ip,
    payload: { email: account.email, password: account.password },
  });
  t.equal(password.statusCode, 200, 'a password login is not on this budget');
});
