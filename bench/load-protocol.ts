// The messages between the runner and the load generator (bench/load.ts): plain data, since they cross IPC.

/** One set of connections hammering one route for the length of a run. */
export interface LoadStream {
  name: string;
  /** Origin of the server, e.g. http://127.0.0.1:41234. */
  origin: string;
  method: 'GET' | 'POST';
  path: string;
  connections: number;
  /**
   * What each connection sends: connection i takes entry i (modulo the length), so each connection can be its own
   * user (an Authorization header) or its own session (a refresh token in the body).
   */
  perConnection: { authorization?: string; body?: string }[];
  /**
   * The refresh rotation: each connection walks its own chain, sending as the next body the `refreshToken` of its
   * previous answer.
   */
  chain?: boolean;
}

export interface LoadRequest {
  id: number;
  seconds: number;
  /** Run together, for the same `seconds` (the mixed scenario runs two). */
  streams: LoadStream[];
}

export interface StreamResult {
  name: string;
  connections: number;
  seconds: number;
  /** Responses received. */
  requests: number;
  /** Responses per second over the run. */
  rps: number;
  /** Milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  non2xx: number;
  /** Connection errors, timeouts included. */
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** With `chain`: how many connections advanced their chain, and how many times in all. */
  chains?: { walked: number; links: number; broken: number };
}

export type LoadResponse = { id: number; results: StreamResult[] } | { id: number; error: string };
