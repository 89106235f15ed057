// The optional bodies of logout and refresh: absent, or empty with a JSON content type, they read as `{}`;
// elsewhere an empty JSON body stays a 400.
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { bearer, registerAndLogin } from '../helpers/session-flow.js';

const { app } = await buildTestApp(t);
const json = { 'content-type': 'application/json' };

t.test('logout: an empty JSON body with an access token logs out', async (t) => {
  const user = await registerAndLogin(app);
  const response = await app.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: { ...json, ...bearer(user.accessToken) },
    payload: '',
  });
  t.equal(response.statusCode, 204);
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.accessToken) });
  t.equal(me.json().code, 'TOKEN_REVOKED', 'the token is revoked');
});

t.test('logout: no credential at all is TOKEN_MISSING, with or without a JSON content type', async (t) => {
  for (const headers of [json, {}]) {
    const response = await app.inject({ method: 'POST', url: '/auth/logout', headers, payload: '' });
    t.equal(response.statusCode, 401);
    t.equal(response.json().code, 'TOKEN_MISSING');
  }
});

t.test('refresh: an empty body, with or without a JSON content type, is REFRESH_TOKEN_INVALID', async (t) => {
  for (const headers of [json, {}]) {
    const response = await app.inject({ method: 'POST', url: '/auth/refresh', headers, payload: '' });
    t.equal(response.statusCode, 401);
    t.equal(response.json().code, 'REFRESH_TOKEN_INVALID');
  }
});

t.test('elsewhere an empty JSON body is still VALIDATION_FAILED', async (t) => {
  const login = await app.inject({ method: 'POST', url: '/auth/login', headers: json, payload: '' });
  t.equal(login.statusCode, 400);
  t.equal(login.json().code, 'VALIDATION_FAILED');
});

t.test('a malformed JSON body on logout is still refused', async (t) => {
  const response = await app.inject({ method: 'POST', url: '/auth/logout', headers: json, payload: '{' });
  t.equal(response.statusCode, 400);
  t.equal(response.json().code, 'VALIDATION_FAILED');
});

t.test('the JSON parser still refuses prototype and constructor poisoning', async (t) => {
  const user = await registerAndLogin(app);
  for (const payload of ['{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}']) {
    // logout-all reads no body, so only the parser stands between it and the payload.
    const response = await app.inject({
      method: 'POST',
      url: '/auth/logout-all',
      headers: { ...json, ...bearer(user.accessToken) },
      payload,
    });
    t.equal(response.statusCode, 400, payload);
    t.equal(response.json().code, 'VALIDATION_FAILED');
  }
});
