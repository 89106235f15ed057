// What Node's HTTP parser rejects on its own still answers in the contract's shape: a complete response with a JSON
// body {statusCode, code, error, message}, then the connection is closed. Over raw TCP, since no client sends these.
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { assertContractResponse, exchange, listen } from './raw-http.js';

const { app } = await buildTestApp(t);
const port = await listen(app);

const host = 'Host: 127.0.0.1\r\n';
const cases: Record<string, { send: string; status: number; code: string }> = {
  'duplicate Content-Length': {
    send: `POST /auth/login HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  'negative Content-Length': {
    send: `POST /auth/login HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: -1\r\n\r\n`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  'Content-Length with chunked': {
    send: `POST /auth/login HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  'a bad chunk size': {
    send: `POST /auth/login HTTP/1.1\r\n${host}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  'NUL in the path': {
    send: `GET /health/\0live HTTP/1.1\r\n${host}\r\n`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  'a garbage request line': { send: 'HELLO THERE\r\n\r\n', status: 400, code: 'VALIDATION_FAILED' },
  'a header over the limit': {
    send: `GET /health/live HTTP/1.1\r\n${host}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    status: 431,
    code: 'VALIDATION_FAILED',
  },
  'no Host header on HTTP/1.1': { send: 'GET /health/live HTTP/1.1\r\n\r\n', status: 400, code: 'VALIDATION_FAILED' },
  'a malformed URL escape': {
    send: `GET /users/%zz HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
};

for (const [name, { send, status, code }] of Object.entries(cases)) {
  t.test(name, async (t) => {
    const response = await exchange(port, { send, boundMs: 5_000 });
    assertContractResponse(t, response, status, code);
  });
}

t.test('HTTP/1.0 needs no Host header', async (t) => {
  const response = await exchange(port, { send: 'GET /health/live HTTP/1.0\r\n\r\n', boundMs: 5_000 });
  t.equal(response.status, 200);
});

t.test('a well-formed request on the same server is still served', async (t) => {
  const response = await exchange(port, {
    send: `GET /health/live HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
    boundMs: 5_000,
  });
  t.equal(response.status, 200);
  t.same(JSON.parse(response.body), { status: 'ok' });
});
