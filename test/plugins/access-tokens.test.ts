// access-tokens on @fastify/jwt: what the plugin signs (header, claims, the injectable clock), and that the plugin's
// own entry points (fastify.jwt, request.jwtVerify, reply.jwtSign) reach no route: authenticate stays the one
// verifier, issue the one signer.
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
// A route registered next to the plugin, as any feature route is.
app.get('/probe', async (request, reply) => ({
  jwt: app.hasDecorator('jwt'),
  jwtVerify: typeof (request as unknown as Record<string, unknown>).jwtVerify,
  jwtSign: typeof (reply as unknown as Record<string, unknown>).jwtSign,
}));
await app.ready();

const subject = { userId: 'user-1', sessionId: 'session-1', roles: ['user'], tokenVersion: 3, amr: ['pwd'] };

t.test('an issued token: our header, exactly our claims, times from the injectable clock', async (t) => {
  clock.set(start + 123);
  const { token, expiresIn } = app.accessTokens.issue(subject);
  t.equal(expiresIn, config.accessTokenTtl);
  const { header, claims } = decodeToken(token);
  t.strictSame(header, { alg: 'RS256', typ: 'at+jwt', kid: our.kid }, 'alg, typ at+jwt and the active kid only');
  t.strictSame(
    Object.keys(claims).sort(),
    ['aud', 'exp', 'iat', 'iss', 'jti', 'roles', 'sid', 'sub', 'ver', 'amr'].sort(),
  );
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

t.test("the plugin's helpers reach no route: no fastify.jwt, request.jwtVerify or reply.jwtSign", async (t) => {
  t.equal(app.hasDecorator('jwt'), false, 'no fastify.jwt on the app');
  t.equal(app.hasRequestDecorator('jwtVerify'), false, 'no request.jwtVerify');
  t.equal(app.hasReplyDecorator('jwtSign'), false, 'no reply.jwtSign');
  const response = await app.inject({ url: '/probe' });
  t.strictSame(response.json(), { jwt: false, jwtVerify: 'undefined', jwtSign: 'undefined' }, 'nor inside a route');
});
