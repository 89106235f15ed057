// The scenarios: each a pair of sides run alternately (A B A B ...), A the service and B its bound (a reference
// server, or for the mixed scenario the same route with no login storm), and the checks that compare them.
import type { LoadStream } from './load-protocol.js';
import type { Check, SideSummary } from './stats.js';
import { atLeast, atMost } from './stats.js';

/** Where the servers of this run listen (the service's changes when it is restarted). */
export interface Origins {
  service: string;
  verify: string;
  sign: string;
  login: string;
}

/** Credentials made through the service's own routes before measuring (see fixtures.ts). */
export interface Credentials {
  /**
   * `Bearer <access token>`, one user per connection of the /users/me and authenticated scenarios; replaced by the
   * runner before the tokens expire (read at each run).
   */
  bearers: string[];
  /** Login bodies of the login scenario's connections. */
  loginBodies: string[];
  /** Login bodies of the storm's connections: other users than the /users/me connections'. */
  stormLoginBodies: string[];
  /** Refresh bodies of sessions never used yet: each call takes `count` of them, each for one chain. */
  takeSessions(count: number): string[];
  /** Refresh bodies of the right size, for the reference (which ignores them). */
  sampleRefreshBodies: string[];
}

export interface Settings {
  connections: number;
  loginConnections: number;
}

export interface Side {
  label: string;
  /** The process under load, for the report. */
  server: 'service' | keyof Omit<Origins, 'service'>;
  /** The streams of one run; the first is the one measured. */
  streams(): LoadStream[];
}

export interface Pair {
  id: string;
  title: string;
  connections: string;
  a: Side;
  b: Side;
  /** How many fresh sessions one run of A uses (created up front by the runner). */
  sessionsPerRun?: number;
  checks(a: SideSummary, b: SideSummary): Check[];
}

const bearerStreams = (count: number, bearers: string[]) =>
  bearers.slice(0, count).map((authorization) => ({ authorization }));
const bodies = (list: string[]) => list.map((body) => ({ body }));

export function scenarios(origins: Origins, credentials: Credentials, settings: Settings): Pair[] {
  const { connections, loginConnections } = settings;
  const get = (name: string, origin: string, path: string): LoadStream => ({
    name,
    origin,
    method: 'GET',
    path,
    connections,
    perConnection: bearerStreams(connections, credentials.bearers),
  });
  const usersMe = () => get('GET /users/me', origins.service, '/users/me');
  const loginStream = (name: string, origin: string, path: string, loginBodies: string[]): LoadStream => ({
    name,
    origin,
    method: 'POST',
    path,
    connections: loginConnections,
    perConnection: bodies(loginBodies),
  });
  const verifyReference: Side = {
    label: 'reference: verify RS256',
    server: 'verify',
    streams: () => [get('reference verify', origins.verify, '/verify')],
  };
  const ratio = (a: SideSummary, b: SideSummary) => a.median.rps / b.median.rps;

  return [
    {
      id: 'authenticated',
      title: 'authenticated, no DB',
      connections: String(connections),
      a: {
        label: 'GET /bench/authenticated',
        server: 'service',
        streams: () => [get('GET /bench/authenticated', origins.service, '/bench/authenticated')],
      },
      b: verifyReference,
      checks: (a, b) => [atLeast('authenticated.ratio', 'req/s vs reference verify', ratio(a, b), 0.85, 'ratio')],
    },
    {
      id: 'users-me',
      title: 'GET /users/me',
      connections: String(connections),
      a: { label: 'GET /users/me', server: 'service', streams: () => [usersMe()] },
      b: verifyReference,
      checks: (a, b) => [atLeast('users-me.ratio', 'req/s vs reference verify', ratio(a, b), 0.6, 'ratio')],
    },
    {
      id: 'login',
      title: 'POST /auth/login',
      connections: String(loginConnections),
      a: {
        label: 'POST /auth/login',
        server: 'service',
        streams: () => [loginStream('POST /auth/login', origins.service, '/auth/login', credentials.loginBodies)],
      },
      b: {
        label: 'reference: argon2id verify + RS256 sign',
        server: 'login',
        streams: () => [loginStream('reference login', origins.login, '/login', credentials.loginBodies)],
      },
      checks: (a, b) => [atLeast('login.ratio', 'req/s vs reference argon2id + sign', ratio(a, b), 0.9, 'ratio')],
    },
    {
      id: 'refresh',
      title: 'POST /auth/refresh, a rotation chain per connection',
      connections: String(connections),
      sessionsPerRun: connections,
      a: {
        label: 'POST /auth/refresh',
        server: 'service',
        streams: () => [
          {
            name: 'POST /auth/refresh',
            origin: origins.service,
            method: 'POST',
            path: '/auth/refresh',
            connections,
            perConnection: bodies(credentials.takeSessions(connections)),
            chain: true,
          },
        ],
      },
      b: {
        label: 'reference: sign RS256',
        server: 'sign',
        streams: () => [
          {
            name: 'reference sign',
            origin: origins.sign,
            method: 'POST',
            path: '/sign',
            connections,
            perConnection: bodies(credentials.sampleRefreshBodies),
          },
        ],
      },
      checks: (a, b) => [
        atLeast('refresh.ratio', 'req/s vs reference sign', ratio(a, b), 0.5, 'ratio'),
        atMost('refresh.errors', 'errors + non-2xx, all rounds', a.errors, 0, 'count'),
        // Every connection advanced its own chain in every round: none stalled, none shared a session.
        atLeast('refresh.chains', 'chains advanced per round (min)', a.minChainsWalked ?? 0, connections, 'count'),
      ],
    },
    {
      id: 'mixed',
      title: 'mixed: GET /users/me under a login storm',
      connections: `${connections} + ${loginConnections}`,
      a: { label: 'GET /users/me, idle', server: 'service', streams: () => [usersMe()] },
      b: {
        label: `GET /users/me, ${loginConnections} login connections alongside`,
        server: 'service',
        streams: () => [
          usersMe(),
          loginStream('POST /auth/login (storm)', origins.service, '/auth/login', credentials.stormLoginBodies),
        ],
      },
      checks: (idle, storm) => [
        atLeast('mixed.throughput', 'req/s during the storm vs idle', storm.median.rps / idle.median.rps, 0.5, 'ratio'),
        atMost('mixed.p99', 'p99 during the storm vs idle', storm.median.p99 / idle.median.p99, 3, 'times'),
      ],
    },
  ];
}

/** The scenarios rerun on the seeded database, compared with their empty-database figures. */
export const SEEDED_SCENARIOS = ['users-me', 'login', 'refresh'];
