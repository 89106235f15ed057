// The token flow on embedded defaults (PGlite and the embedded store), as `npm start` runs it with no servers: the
// hot statements that bypass the query builder (src/db/statements.ts) take a different driver path there.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { TestClock } from './helpers/clock.js';

t.test('register, log in, read the profile, rotate, race, reuse: on PGlite', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'auth-embedded-flow-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATA_DIR: path.join(root, 'data'),
    KEYS_DIR: path.join(root, 'keys'),
    EMAIL_VERIFICATION: 'off',
    RATE_LIMIT_ENABLED: 'false',
  });
  const clock = new TestClock();
  const app = await buildApp(config, { logger: false, clock });
  t.teardown(() => app.close());
  t.equal(app.database.kind, 'pglite');

  const email = 'embedded-flow@example.com';
  const password = 'correct horse battery staple';
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });
  t.equal((await post('/auth/register', { email, password })).statusCode, 201);
  const login = (await post('/auth/login', { email, password })).json();

  const me = await app.inject({
    method: 'GET',
    url: '/users/me',
    headers: { authorization: `Bearer ${login.accessToken}` },
  });
  t.equal(me.statusCode, 200);
  t.match(
    me.json(),
    { user: { email, roles: ['user'], mfaEnabled: false } },
    'the profile, read by the named statement',
  );
  t.type(me.json().user.createdAt, 'string');

  const first = await post('/auth/refresh', { refreshToken: login.refreshToken });
  t.equal(first.statusCode, 200, 'the first rotation');
  const rotated = first.json();
  t.not(rotated.refreshToken, login.refreshToken);
  t.equal(rotated.user.email, email);

  const again = await post('/auth/refresh', { refreshToken: login.refreshToken });
  t.equal(again.statusCode, 200, 'inside the grace interval the same client racing itself');
  t.equal(again.json().refreshToken, rotated.refreshToken, 'gets the same child');

  const next = await post('/auth/refresh', { refreshToken: rotated.refreshToken });
  t.equal(next.statusCode, 200, 'the child rotates in turn');

  clock.advance((config.refreshReuseInterval + 1) * 1000);
  const reused = await post('/auth/refresh', { refreshToken: login.refreshToken });
  t.equal(reused.statusCode, 401);
  t.equal(reused.json().code, 'REFRESH_TOKEN_REUSED', 'a rotated token after the grace interval ends the session');
  const after = await post('/auth/refresh', { refreshToken: next.json().refreshToken });
  t.equal(after.json().code, 'REFRESH_TOKEN_INVALID', 'and with it every token of the session');
});
