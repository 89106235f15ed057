// The load generator, a child process of the runner pinned to its own CPU: runs autocannon (programmatic API, in
// this process's event loop) for each request the runner sends over IPC, and answers with the figures.
import autocannon from 'autocannon';
import { announceReady, exitWithParent } from './child.js';
import type { LoadRequest, LoadResponse, LoadStream, StreamResult } from './load-protocol.js';

exitWithParent();

process.on('message', (request: LoadRequest) => {
  Promise.all(request.streams.map((stream) => runStream(stream, request.seconds))).then(
    (results) => reply({ id: request.id, results }),
    (error: unknown) => reply({ id: request.id, error: (error as Error).stack ?? String(error) }),
  );
});
announceReady();

function reply(response: LoadResponse): void {
  process.send?.(response);
}

/** One connection's own credential and, for a chain, where it is. */
interface ConnectionState {
  index?: number;
  authorization?: string;
  body?: string;
}

/**
 * autocannon deep-copies its options for each connection, this request object included, and calls onResponse as a
 * method of that copy, so `state` belongs to one connection. (autocannon's `context` would not do: with a single
 * request in the list it is reset after every request.)
 */
interface StatefulRequest extends autocannon.Request {
  state: ConnectionState;
}

async function runStream(stream: LoadStream, seconds: number): Promise<StreamResult> {
  if (stream.perConnection.length === 0) throw new Error(`${stream.name}: no per-connection credentials`);
  let nextConnection = 0;
  const links = new Map<number, number>();
  let broken = 0;

  const request: StatefulRequest = {
    method: stream.method,
    path: stream.path,
    state: {},
    setupRequest: (built, _context) => {
      const { state } = built as StatefulRequest;
      if (state.index === undefined) {
        // Connections are built in order, so connection i takes entry i.
        state.index = nextConnection++;
        const own = stream.perConnection[state.index % stream.perConnection.length];
        state.authorization = own?.authorization;
        state.body = own?.body;
      }
      const headers = { ...built.headers };
      if (state.authorization) headers.authorization = state.authorization;
      if (state.body !== undefined) headers['content-type'] = 'application/json';
      return { ...built, headers, body: state.body };
    },
    onResponse: stream.chain
      ? function (this: StatefulRequest, status: number, body: string) {
          const { state } = this;
          const next = status === 200 ? refreshTokenOf(body) : undefined;
          // A broken link keeps the old token: its retries then show up as non-2xx answers.
          if (next === undefined || state.index === undefined) {
            broken++;
            return;
          }
          state.body = JSON.stringify({ refreshToken: next });
          links.set(state.index, (links.get(state.index) ?? 0) + 1);
        }
      : undefined,
  };

  const result = await autocannon({
    url: stream.origin,
    connections: stream.connections,
    duration: seconds,
    requests: [request],
    timeout: 10,
  });

  const statusCodes: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = count ?? 0;
  return {
    name: stream.name,
    connections: stream.connections,
    seconds: result.duration,
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    ...(stream.chain
      ? { chains: { walked: links.size, links: [...links.values()].reduce((a, b) => a + b, 0), broken } }
      : {}),
  };
}

function refreshTokenOf(body: string): string | undefined {
  try {
    const token = (JSON.parse(body) as { refreshToken?: unknown }).refreshToken;
    return typeof token === 'string' ? token : undefined;
  } catch {
    return undefined;
  }
}
