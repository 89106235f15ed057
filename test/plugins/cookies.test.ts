// The cookie policy's CSRF rule, attacked: a csrf value must be ours and made for the session it is used with, so
// a value planted in the csrf cookie (a sibling subdomain can set cookies) with a matching header fails.
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import {
  assertError,
  COOKIES,
  type CookieLogin,
  loginWithCookies,
  me,
  refreshTokenRow,
  register,
  sessionRow,
} from '../helpers/session-flow.js';

const { app } = await buildTestApp(t);

const post = (url: string, session: CookieLogin, csrf: { cookie: string; header: string }) =>
  app.inject({
    method: 'POST',
    url,
    cookies: { ...session.cookies, [COOKIES.csrf]: csrf.cookie },
    headers: { 'x-csrf-token': csrf.header },
  });

t.test('a csrf value the client made up fails, even when cookie and header match', async (t) => {
  const session = await loginWithCookies(app, await register(app));
  const forged = [
    ['a random value', 'attacker-chosen-value'],
    ['a nonce with a made-up tag', `${session.csrf.split('.')[0]}.${'A'.repeat(43)}`],
    ['our value with a flipped tag character', `${session.csrf.slice(0, -1)}${session.csrf.endsWith('A') ? 'B' : 'A'}`],
    ['our value with a third part', `${session.csrf}.x`],
  ] as const;
  for (const [label, value] of forged) {
    for (const url of ['/auth/logout-all', '/auth/refresh', '/auth/logout']) {
      assertError(
        t,
        await post(url, session, { cookie: value, header: value }),
        403,
        'CSRF_FAILED',
        `${label}: ${url}`,
      );
    }
  }
  t.equal((await sessionRow(app, session.sessionId))?.revokedAt, null, 'the session is untouched');
  t.equal((await refreshTokenRow(app, session.refresh))?.usedAt, null, 'the refresh token is not consumed');
  t.equal((await me(app, session.access)).statusCode, 200, 'the access token still works');
});

t.test("another session's genuine csrf value fails: the value is bound to its session", async (t) => {
  const account = await register(app);
  const victim = await loginWithCookies(app, account);
  const attacker = await loginWithCookies(app, account);
  const borrowed = { cookie: attacker.csrf, header: attacker.csrf };
  for (const url of ['/auth/logout-all', '/auth/refresh', '/auth/logout']) {
    assertError(t, await post(url, victim, borrowed), 403, 'CSRF_FAILED', url);
  }
  t.equal((await sessionRow(app, victim.sessionId))?.revokedAt, null, 'the victim session is untouched');

  const own = await post('/auth/logout', victim, { cookie: victim.csrf, header: victim.csrf });
  t.equal(own.statusCode, 204, "the session's own value works");
  t.ok((await sessionRow(app, victim.sessionId))?.revokedAt, 'and logs it out');
});

t.test('each login and refresh makes a fresh value for the same session', async (t) => {
  const account = await register(app);
  const one = await loginWithCookies(app, account);
  const refreshed = await post('/auth/refresh', one, { cookie: one.csrf, header: one.csrf });
  t.equal(refreshed.statusCode, 200);
  const next = refreshed.json().csrfToken as string;
  t.not(next, one.csrf, 'a new value');
  t.equal(
    refreshed.cookies.find((cookie) => cookie.name === COOKIES.csrf)?.value,
    next,
    'the body carries the cookie value',
  );
});
