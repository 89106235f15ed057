// No 500 on bad input (issue item 3): control characters in string fields and out-of-range cursor dates are 400
// VALIDATION_FAILED (contract Details: Strings; Lists), checked once for every route.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { decodeCursor, encodeCursor } from '../../src/lib/cursor.js';
import { loginAdmin } from '../helpers/admin.js';
import { buildTestApp } from '../helpers/app.js';
import { assertError, bearer, registerAndLogin, STRONG_PASSWORD, uniqueEmail } from '../helpers/session-flow.js';

const { app } = await buildTestApp(t);
const register = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/auth/register', payload });

t.test('a C0 control character or DEL in a string field is 400 VALIDATION_FAILED', async (t) => {
  for (const character of ['\u0000', '\u0001', '\u000a', '\u001f', '\u007f']) {
    const label = `U+${character.charCodeAt(0).toString(16).padStart(4, '0')}`;
    const inName = await register({ email: uniqueEmail(), password: STRONG_PASSWORD, name: `A${character}nn` });
    assertError(t, inName, 400, 'VALIDATION_FAILED', `${label} in name`);
    t.match(inName.json().message, /body\/name/, `${label}: the message names the field`);
    const inEmail = await register({ email: `a${character}${uniqueEmail()}`, password: STRONG_PASSWORD });
    assertError(t, inEmail, 400, 'VALIDATION_FAILED', `${label} in email`);
  }
});

t.test('a password may hold control characters, but never U+0000', async (t) => {
  const allowed = await register({ email: uniqueEmail(), password: `${STRONG_PASSWORD}\u0001\u001f\u007f` });
  t.equal(allowed.statusCode, 201, 'U+0001, U+001F and U+007F are allowed in a password');
  const refused = await register({ email: uniqueEmail(), password: `${STRONG_PASSWORD}\u0000` });
  assertError(t, refused, 400, 'VALIDATION_FAILED', 'U+0000 in password');

  const { accessToken } = await registerAndLogin(app);
  for (const payload of [
    { currentPassword: `${STRONG_PASSWORD}\u0000`, newPassword: 'another good passphrase' },
    { currentPassword: STRONG_PASSWORD, newPassword: 'another good passphrase\u0000' },
  ]) {
    const response = await app.inject({ method: 'POST', url: '/auth/password', headers: bearer(accessToken), payload });
    assertError(t, response, 400, 'VALIDATION_FAILED', 'U+0000 in a password field');
  }
});

t.test('control characters in the query string and path are refused too', async (t) => {
  const admin = await loginAdmin(app);
  const query = await app.inject({ method: 'GET', url: '/users?cursor=ab%00cd', headers: bearer(admin.accessToken) });
  assertError(t, query, 400, 'VALIDATION_FAILED', 'NUL in a query parameter');
  const path = await app.inject({ method: 'GET', url: '/users/%00', headers: bearer(admin.accessToken) });
  assertError(t, path, 400, 'VALIDATION_FAILED', 'NUL in a path parameter');
});

const cursorOf = (at: string, id = randomUUID()) => Buffer.from(JSON.stringify([at, id])).toString('base64url');

t.test('an out-of-range date in a cursor is 400 VALIDATION_FAILED on every list', async (t) => {
  const admin = await loginAdmin(app);
  const user = await registerAndLogin(app);
  const lists = [
    { url: '/users', token: admin.accessToken },
    { url: '/users/me/events', token: user.accessToken },
    { url: '/auth/sessions', token: user.accessToken },
  ];
  for (const at of ['+275760-09-13T00:00:00.000Z', '+099999-01-01T00:00:00.000Z', '-000001-01-01T00:00:00.000Z']) {
    for (const { url, token } of lists) {
      const response = await app.inject({
        method: 'GET',
        url,
        query: { cursor: cursorOf(at) },
        headers: bearer(token),
      });
      if (response.statusCode === 200 && url === '/auth/sessions') continue; // a list without cursors ignores it
      assertError(t, response, 400, 'VALIDATION_FAILED', `${url} with ${at}`);
    }
  }
});

t.test('decodeCursor takes exactly what encodeCursor makes', async (t) => {
  const id = randomUUID();
  const at = new Date('2024-05-06T07:08:09.010Z');
  t.same(decodeCursor(encodeCursor({ at, id })), { at, id }, 'round trip');
  for (const bad of [
    '+275760-09-13T00:00:00.000Z',
    '+099999-01-01T00:00:00.000Z',
    '0000-01-01T00:00:00.000Z',
    '2024-05-06',
    '2024-05-06T07:08:09Z',
    '2024-02-30T00:00:00.000Z',
    'May 6, 2024',
  ]) {
    t.throws(() => decodeCursor(cursorOf(bad, id)), { code: 'VALIDATION_FAILED' }, bad);
  }
});
