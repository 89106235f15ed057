// access-tokens on @fastify/jwt: what the plugin signs (header, claims, the injectable clock), and that its other
// entry points (request.jwtVerify, reply.jwtSign, a bare fastify.jwt.sign) are no second verifier or signer: the
// key resolver answers only our own calls, so authenticate stays the one verifier.
import Fastify from 'fastify';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { uuidv7Time } from '../../src/lib/ids.js';
import accessTokensPlugin from '../../src/plugins/access-tokens.js';
import configPlugin from '../../src/plugins/config.js';
import keysPlugin from '../../src/plugins/keys.js';
import { makeKeysDir } from '../helpers/app.js';
import { TestClock } from '../helpers/clock.js';
import { decodeToken, ourKey } from '../helpers/forge.js';

// Two hours from now, on a whole millisecond: far enough that a signer reading Date.now() would be caught.
const start = Date.now() + 2 * 3600_000;
const clock = new TestClock(start);
const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', KEYS_DIR: await makeKeysDir(t) });
const our = await ourKey(config.keysDir);

const app = Fastify({ logger: false });
t.teardown(() => app.close());
await app.register(configPlugin, { config, clock });
await app.register(keysPlugin);
await app.register(accessTokensPlugin);
// Routes that reach for the plugin's own request/reply helpers, as a future route might.
app.get('/plugin-verify', async (request) => {
  try {
    return { verified: true, user: await request.jwtVerify() };
  } catch (error) {
    return { verified: false, error: (error as Error).message };
  }
});
app.get('/plugin-sign', async (_request, reply) => {
  try {
    return { signed: true, token: await reply.jwtSign({ sub: 'someone' }) };
  } catch (error) {
    return { signed: false, error: (error as Error).message };
  }
});
await app.ready();

const subject = { userId: 'user-1', sessionId: 'session-1', roles: ['user'], tokenVersion: 3 };

t.test('an issued token: our header, exactly our claims, times from the injectable clock', async (t) => {
  clock.set(start + 123);
  const { token, expiresIn } = app.accessTokens.issue(subject);
  t.equal(expiresIn, config.accessTokenTtl);
  const { header, claims } = decodeToken(token);
  t.strictSame(header, { alg: 'RS256', typ: 'at+jwt', kid: our.kid }, 'alg, typ at+jwt and the active kid only');
  t.strictSame(Object.keys(claims).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'roles', 'sid', 'sub', 'ver']);
  const iat = Math.floor((start + 123) / 1000);
  t.match(claims, {
    iss: config.issuer,
    aud: config.audience,
    sub: 'user-1',
    sid: 'session-1',
    roles: ['user'],
    ver: 3,
    iat,
    exp: iat + config.accessTokenTtl,
  });
  t.equal(uuidv7Time(claims.jti), start + 123, 'jti: a UUIDv7 of the issue time to the millisecond');
  const verified = await app.accessTokens.verify(token);
  t.equal(verified.issuedAtMs, start + 123);
  t.equal(verified.claims.sub, 'user-1');
});

t.test("the plugin's request.jwtVerify is no second verifier: it finds no key, even for our own token", async (t) => {
  const { token } = app.accessTokens.issue(subject);
  t.equal((await app.accessTokens.verify(token)).claims.sub, 'user-1', 'control: the one verifier accepts it');
  const response = await app.inject({ url: '/plugin-verify', headers: { authorization: `Bearer ${token}` } });
  t.equal(response.statusCode, 200);
  t.match(response.json(), { verified: false, error: 'unknown kid' }, 'refused: no key');
  t.notOk(response.json().user);
});

t.test('no token is signed outside issue: reply.jwtSign and fastify.jwt.sign without our key refuse', async (t) => {
  const response = await app.inject({ url: '/plugin-sign' });
  t.match(response.json(), { signed: false, error: 'unknown kid' }, 'reply.jwtSign refused: no key');
  t.notOk(response.json().token);
  // The plugin's own signer (no per-token key, so no kid): its key resolver finds none.
  await t.rejects(Promise.resolve(app.jwt.sign({ sub: 'someone' }) as unknown as Promise<string>), 'fastify.jwt.sign');
  await t.rejects(
    Promise.resolve(app.jwt.sign({ sub: 'someone' }, { kid: 'not-ours' }) as unknown as Promise<string>),
    'fastify.jwt.sign under a kid not ours',
  );
});
