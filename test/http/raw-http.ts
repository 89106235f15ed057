// Raw HTTP over TCP for tests: bytes no HTTP client would send, and the response parsed by hand.
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import type { Test } from 'tap';
import type { App } from '../../src/app.js';

export interface RawResponse {
  /** Everything the server wrote. */
  raw: string;
  statusLine: string;
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection (rather than our bound running out). */
  closed: boolean;
  elapsedMs: number;
}

/** Listens on 127.0.0.1, an ephemeral port; closing is the caller's (app.close()). */
export async function listen(app: App): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as net.AddressInfo).port;
}

export function parseResponse(raw: string): Omit<RawResponse, 'closed' | 'elapsedMs'> {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = end === -1 ? '' : raw.slice(end + 4);
  const length = Number(headers['content-length']);
  if (Number.isInteger(length)) body = Buffer.from(body).subarray(0, length).toString();
  return { raw, statusLine, status: Number(statusLine.split(' ')[1]), headers, body };
}

export interface Exchange {
  /** Written at once after connecting. */
  send: string | Buffer;
  /** Then written one piece at a time, `intervalMs` apart, while the socket is open. */
  trickle?: { pieces: (string | Buffer)[]; intervalMs: number };
  /** Gives up (destroying the socket) after this long. */
  boundMs: number;
}

/** Connects, writes, and reads until the server closes the connection or the bound passes. */
export function exchange(port: number, { send, trickle, boundMs }: Exchange): Promise<RawResponse> {
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    const socket = net.connect({ port, host: '127.0.0.1' });
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(bound);
      clearInterval(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      resolve({ ...parseResponse(raw), closed, elapsedMs: Date.now() - started });
    };
    const bound = setTimeout(() => finish(false), boundMs);
    socket.on('connect', () => {
      socket.write(send);
      if (trickle) {
        const pieces = [...trickle.pieces];
        timer = setInterval(() => {
          const piece = pieces.shift();
          if (piece === undefined || socket.destroyed || !socket.writable) return clearInterval(timer);
          socket.write(piece);
        }, trickle.intervalMs);
      }
    });
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
  });
}

/** A complete response in the contract's error shape, and the connection closed by the server. */
export function assertContractResponse(t: Test, response: RawResponse, status: number, code: string) {
  t.equal(response.statusLine, `HTTP/1.1 ${status} ${STATUS_CODES[status]}`, 'status line');
  t.match(response.headers['content-type'], /^application\/json/, 'JSON');
  let body: unknown;
  try {
    body = JSON.parse(response.body);
  } catch {
    t.fail(`body is not JSON: ${JSON.stringify(response.raw)}`);
    return;
  }
  t.same(Object.keys(body as object).sort(), ['code', 'error', 'message', 'statusCode'], 'exactly the four members');
  t.match(body, { statusCode: status, code, error: STATUS_CODES[status], message: String }, 'contract shape');
  t.notMatch(response.body, /FST_|HPE_|ERR_/, 'no framework or parser code');
  t.ok(response.closed, 'the server closed the connection');
}
