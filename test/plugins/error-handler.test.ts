import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import * as errors from '../../src/errors.js';
import { DependencyUnavailable, EmailTaken, TokenInvalid, TokenMissing } from '../../src/errors.js';
import configPlugin from '../../src/plugins/config.js';
import errorHandlerPlugin, { frameworkErrors } from '../../src/plugins/error-handler.js';
import { buildTestApp } from '../helpers/app.js';

const errorKeys = ['code', 'error', 'message', 'statusCode'];

/** Asserts the contract's error shape: exactly these four members. */
function assertErrorShape(t: Test, body: unknown, statusCode: number, code: string, error: string): void {
  t.same(Object.keys(body as object).sort(), errorKeys, 'exactly statusCode, code, error, message');
  t.match(body, { statusCode, code, error, message: String });
}

t.test('the real app', async (t) => {
  const { app } = await buildTestApp(t);
  const register = (payload: string | Buffer, contentType = 'application/json') =>
    app.inject({ method: 'POST', url: '/auth/register', payload, headers: { 'content-type': contentType } });

  t.test('an unknown route is 404 NOT_FOUND in the error shape', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/no/such/route?x=1' });
    t.equal(response.statusCode, 404);
    t.match(response.headers['content-type'], /^application\/json/);
    assertErrorShape(t, response.json(), 404, 'NOT_FOUND', 'Not Found');
    t.match(response.json().message, '/no/such/route');
    t.notMatch(response.json().message, 'x=1', 'the query string is not echoed');
  });

  t.test('malformed JSON is 400 VALIDATION_FAILED', async (t) => {
    const response = await register('{"email": "a@example.com", ');
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
  });

  t.test('an empty JSON body is 400 VALIDATION_FAILED', async (t) => {
    const response = await register('');
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
  });

  t.test('an unknown property is rejected, naming it', async (t) => {
    const response = await register(
      JSON.stringify({ email: 'a@example.com', password: 'correct horse battery', isAdmin: true }),
    );
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
    t.match(response.json().message, /isAdmin/);
  });

  t.test('a missing field is rejected, naming it', async (t) => {
    const response = await register(JSON.stringify({ password: 'correct horse battery' }));
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
    t.match(response.json().message, /email/);

    const noPassword = await register(JSON.stringify({ email: 'a@example.com' }));
    t.equal(noPassword.statusCode, 400);
    t.match(noPassword.json().message, /password/);
  });

  t.test('a field of the wrong type is rejected, naming it', async (t) => {
    const response = await register(
      JSON.stringify({ email: 'a@example.com', password: { value: 'correct horse battery' } }),
    );
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
    t.match(response.json().message, /password/);
  });

  t.test('a body over 16 KiB is 413 PAYLOAD_TOO_LARGE', async (t) => {
    const payload = JSON.stringify({ email: 'a@example.com', password: 'x'.repeat(16 * 1024), name: 'big' });
    const response = await register(payload);
    t.equal(response.statusCode, 413);
    assertErrorShape(t, response.json(), 413, 'PAYLOAD_TOO_LARGE', 'Payload Too Large');
    t.match(response.json().message, /16384/);
  });

  t.test('a text/plain body is 415 UNSUPPORTED_MEDIA_TYPE', async (t) => {
    const response = await register(
      JSON.stringify({ email: 'a@example.com', password: 'correct horse battery' }),
      'text/plain',
    );
    t.equal(response.statusCode, 415);
    assertErrorShape(t, response.json(), 415, 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type');
  });

  t.test('a form-encoded body is 415 UNSUPPORTED_MEDIA_TYPE', async (t) => {
    const response = await register('email=a%40example.com&password=x', 'application/x-www-form-urlencoded');
    t.equal(response.statusCode, 415);
    assertErrorShape(t, response.json(), 415, 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type');
  });

  t.test('a malformed URL escape is 400 VALIDATION_FAILED, not FST_ERR_BAD_URL', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/users/%zz' });
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
    t.notMatch(response.body, /FST_/);
  });

  t.test('an over-long path parameter is a malformed id: 400 VALIDATION_FAILED, not the router 414', async (t) => {
    const response = await app.inject({ method: 'GET', url: `/users/${'a'.repeat(500)}` });
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
    t.notMatch(response.body, /FST_/);
  });

  t.test('errors carry the request id header', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/no/such/route' });
    t.match(response.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  });
});

/** A bare Fastify with only the config and error-handler plugins, whose logs are captured. */
async function bareApp(t: Test) {
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      callback();
    },
  });
  const app = Fastify({
    logger: { level: 'warn', stream },
    genReqId: () => randomUUID(),
    frameworkErrors,
  });
  await app.register(configPlugin, {
    config: loadConfig({ NODE_ENV: 'test', ISSUER: 'http://auth.test', EMAIL_VERIFICATION: 'off' }),
    clock: systemClock,
  });
  // The plugin installs the 404 handler itself (in the real app behind the rate-limit plugin's per-IP budget).
  await app.register(errorHandlerPlugin);
  t.teardown(() => app.close());
  return { app, logs };
}

t.test('a bare Fastify with the error handler', async (t) => {
  const { app, logs } = await bareApp(t);
  const pgLike = (code: string, message: string) => Object.assign(new Error(message), { code });
  const thrown: Record<string, () => unknown> = {
    '/internal': () => {
      throw new Error('secret internal detail');
    },
    '/econnrefused': () => {
      throw pgLike('ECONNREFUSED', 'connect ECONNREFUSED 10.1.2.3:5432');
    },
    '/wrapped': () => {
      // drizzle wraps the driver's error: the cause decides.
      throw new Error('Failed query: select 1', {
        cause: pgLike('ECONNREFUSED', 'connect ECONNREFUSED 10.1.2.3:5432'),
      });
    },
    '/admin-shutdown': () => {
      throw pgLike('57P01', 'terminating connection due to administrator command');
    },
    '/redis-down': () => {
      throw new DependencyUnavailable('redis', new Error('Stream is not writeable'));
    },
    '/unique-violation': () => {
      throw pgLike('23505', 'duplicate key value violates unique constraint "users_email_lower_key"');
    },
    '/email-taken': () => {
      throw new EmailTaken();
    },
    '/token-missing': () => {
      throw new TokenMissing();
    },
    '/token-invalid': () => {
      throw new TokenInvalid();
    },
    '/framework-4xx': () => {
      // A framework error of a status the contract does not name: still a catalogue code.
      throw Object.assign(new Error('Method not allowed'), { code: 'FST_ERR_SOMETHING', statusCode: 405 });
    },
  };
  for (const [url, handler] of Object.entries(thrown)) app.get(url, async () => handler());
  await app.ready();

  t.test('a 500 shows the request id, never the internal detail', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/internal' });
    t.equal(response.statusCode, 500);
    const body = response.json();
    assertErrorShape(t, body, 500, 'INTERNAL_ERROR', 'Internal Server Error');
    const logged = logs.find((line) => line.level === 50);
    const requestId = logged?.reqId as string;
    t.match(requestId, /^[0-9a-f-]{36}$/);
    t.match(body.message, requestId, 'the message names the request id');
    t.notMatch(response.body, /secret internal detail/, 'the detail stays out of the response');
    t.notMatch(response.body, /at .*\.ts:\d+/, 'no stack trace');
    t.match(JSON.stringify(logged), /secret internal detail/, 'the detail is logged for operators');
  });

  t.test('a connection error from Postgres is 503 SERVICE_UNAVAILABLE', async (t) => {
    for (const url of ['/econnrefused', '/wrapped', '/admin-shutdown']) {
      const response = await app.inject({ method: 'GET', url });
      t.equal(response.statusCode, 503, url);
      assertErrorShape(t, response.json(), 503, 'SERVICE_UNAVAILABLE', 'Service Unavailable');
      t.notMatch(response.body, /10\.1\.2\.3|administrator/, `${url}: the driver message stays out`);
    }
  });

  t.test('Redis being unavailable is 503 SERVICE_UNAVAILABLE', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/redis-down' });
    t.equal(response.statusCode, 503);
    assertErrorShape(t, response.json(), 503, 'SERVICE_UNAVAILABLE', 'Service Unavailable');
  });

  t.test('a query Postgres refused (not a connection error) is a 500, not a 503', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/unique-violation' });
    t.equal(response.statusCode, 500);
    t.equal(response.json().code, 'INTERNAL_ERROR');
    t.notMatch(response.body, /users_email_lower_key/);
  });

  t.test('a catalogue error keeps its status, code and message', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/email-taken' });
    t.equal(response.statusCode, 409);
    t.same(response.json(), {
      statusCode: 409,
      code: 'EMAIL_TAKEN',
      error: 'Conflict',
      message: 'This email is already registered',
    });
  });

  t.test('401s carry the Bearer challenge (RFC 6750)', async (t) => {
    const missing = await app.inject({ method: 'GET', url: '/token-missing' });
    t.equal(missing.statusCode, 401);
    t.equal(missing.headers['www-authenticate'], 'Bearer realm="http://auth.test"');
    assertErrorShape(t, missing.json(), 401, 'TOKEN_MISSING', 'Unauthorized');

    const invalid = await app.inject({ method: 'GET', url: '/token-invalid' });
    t.equal(invalid.statusCode, 401);
    t.equal(invalid.headers['www-authenticate'], 'Bearer realm="http://auth.test", error="invalid_token"');
    assertErrorShape(t, invalid.json(), 401, 'TOKEN_INVALID', 'Unauthorized');
  });

  t.test('a framework 4xx the contract does not name is 400 VALIDATION_FAILED, never an FST_ code', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/framework-4xx' });
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
    t.notMatch(response.body, /FST_/);
  });

  t.test('a bad URL on a bare instance goes through frameworkErrors into the contract shape', async (t) => {
    const response = await app.inject({ method: 'GET', url: '/internal%zz' });
    t.equal(response.statusCode, 400);
    assertErrorShape(t, response.json(), 400, 'VALIDATION_FAILED', 'Bad Request');
  });

  t.test('the 404 handler has the error shape on a bare instance too', async (t) => {
    const response = await app.inject({ method: 'DELETE', url: '/nothing' });
    t.equal(response.statusCode, 404);
    assertErrorShape(t, response.json(), 404, 'NOT_FOUND', 'Not Found');
    t.match(response.json().message, 'DELETE /nothing');
  });
});

t.test('one error table: every code of the contract, each factory derived from it', async (t) => {
  const contract = [
    'VALIDATION_FAILED',
    'PASSWORD_TOO_WEAK',
    'INVALID_CREDENTIALS',
    'TOKEN_MISSING',
    'TOKEN_INVALID',
    'TOKEN_EXPIRED',
    'TOKEN_REVOKED',
    'REFRESH_TOKEN_INVALID',
    'REFRESH_TOKEN_REUSED',
    'CSRF_FAILED',
    'FORBIDDEN',
    'NOT_FOUND',
    'EMAIL_TAKEN',
    'LAST_ADMIN',
    'PAYLOAD_TOO_LARGE',
    'UNSUPPORTED_MEDIA_TYPE',
    'RATE_LIMITED',
    'SERVICE_UNAVAILABLE',
  ];
  const { errorCodes, errorTable } = errors;
  for (const code of [...contract, 'INTERNAL_ERROR']) t.ok(errorCodes.includes(code as never), `${code} is listed`);
  t.same([...new Set(errorCodes)], errorCodes, 'no code twice');
  type Factory = new () => Error & { code: string; statusCode: number };
  const factories = (Object.values(errors) as unknown[]).filter(
    (value): value is Factory =>
      typeof value === 'function' && (value as { prototype?: unknown }).prototype instanceof Error,
  );
  const made = factories.map((Factory) => new Factory()).filter((error) => error.name === 'FastifyError');
  t.ok(made.length >= 17, 'the factories are found');
  for (const error of made) {
    const entry = errorTable[error.code as keyof typeof errorTable];
    t.ok(entry, `${error.code} comes from the table`);
    t.equal(error.statusCode, entry?.statusCode, `${error.code}: status from the table`);
  }
  for (const code of errorCodes) {
    const { statusCode } = errorTable[code];
    t.ok(statusCode >= 400 && statusCode <= 599, `${code}: an error status`);
  }
});

t.test('unknown URLs share a per-IP budget: probing answers 429 after 60 a minute', async (t) => {
  const { app } = await buildTestApp(t, { env: { RATE_LIMIT_ENABLED: 'true' } });
  const probe = (path: string, remoteAddress = '203.0.113.7') =>
    app.inject({ method: 'GET', url: path, remoteAddress });
  for (let i = 0; i < 60; i++) {
    const response = await probe(`/probe-${i}`);
    if (response.statusCode !== 404) t.fail(`probe ${i} answered ${response.statusCode}`);
  }
  const limited = await probe('/probe-60');
  t.equal(limited.statusCode, 429);
  t.equal(limited.json().code, 'RATE_LIMITED');
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After is set');
  t.equal((await probe('/probe-61', '203.0.113.8')).statusCode, 404, 'another address has its own budget');
  t.equal(
    (await app.inject({ method: 'GET', url: '/health/live', remoteAddress: '203.0.113.7' })).statusCode,
    200,
    'known routes are unaffected',
  );
});
