// Where Redis is: one server (REDIS_URL=redis[s]://), a Sentinel-monitored master (REDIS_URL=redis[s]+sentinel://),
// or a Cluster (REDIS_CLUSTER_NODES). Parsed here, without ioredis, so config.ts can validate it at startup.

export interface RedisNode {
  host: string;
  port: number;
}

export type RedisTarget =
  | { mode: 'single'; url: string }
  | {
      mode: 'sentinel';
      sentinels: RedisNode[];
      /** The master's name as the sentinels know it (`sentinel monitor <name> ...`). */
      name: string;
      /** Credentials of the master and its replicas. */
      username?: string;
      password?: string;
      /** Credentials of the sentinels themselves (`?sentinelPassword=`), when they require one. */
      sentinelPassword?: string;
      /** `rediss+sentinel://`: TLS to the sentinels and to the master. */
      tls: boolean;
    }
  | { mode: 'cluster'; nodes: RedisNode[]; username?: string; password?: string; tls: boolean };

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

const SENTINEL_PORT = 26379;
const REDIS_PORT = 6379;

/**
 * `redis[s]+sentinel://[[username]:password@]host1[:26379],host2[:26379]/<mastername>[?sentinelPassword=...]`.
 * Hand-parsed: a WHATWG URL does not take a comma-separated host list.
 */
export function parseSentinelUrl(url: string): Parsed<RedisTarget & { mode: 'sentinel' }> {
  const match = /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#]*)(?:\/([^/?#]*))?\/?(?:\?([^#]*))?$/.exec(url);
  if (!match) return fail('expected redis+sentinel://[:password@]host1:26379,host2:26379/<mastername>');
  const [, scheme, userinfo, hostList = '', name = '', query] = match;
  const sentinels = parseNodes(hostList, SENTINEL_PORT);
  if (!sentinels.ok) return sentinels;
  if (name === '') return fail('the master name is missing: add /<mastername> after the sentinel hosts');
  const credentials = parseUserinfo(userinfo);
  if (!credentials.ok) return credentials;
  let sentinelPassword: string | undefined;
  for (const [key, value] of new URLSearchParams(query ?? '')) {
    if (key !== 'sentinelPassword') return fail(`unknown parameter ${key} (only sentinelPassword is read)`);
    sentinelPassword = value;
  }
  return {
    ok: true,
    value: {
      mode: 'sentinel',
      sentinels: sentinels.value,
      name: decodeURIComponent(name),
      ...credentials.value,
      ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
      tls: scheme === 'rediss',
    },
  };
}

/** `host1:7000,host2:7001`, optionally behind one `redis[s]://[[username]:password@]` for every node. */
export function parseClusterNodes(value: string): Parsed<RedisTarget & { mode: 'cluster' }> {
  const match = /^(?:(rediss?):\/\/(?:([^@/]*)@)?)?([^/?#]*)\/?$/.exec(value);
  if (!match) return fail('expected host1:7000,host2:7001 (optionally behind redis[s]://[:password@])');
  const [, scheme, userinfo, hostList = ''] = match;
  const nodes = parseNodes(hostList, REDIS_PORT);
  if (!nodes.ok) return nodes;
  const credentials = parseUserinfo(userinfo);
  if (!credentials.ok) return credentials;
  return { ok: true, value: { mode: 'cluster', nodes: nodes.value, ...credentials.value, tls: scheme === 'rediss' } };
}

function parseNodes(list: string, defaultPort: number): Parsed<RedisNode[]> {
  const items = list.split(',').map((item) => item.trim());
  if (items.every((item) => item === '')) return fail('no host given');
  const nodes: RedisNode[] = [];
  for (const item of items) {
    // host, host:port, [v6], [v6]:port; names and addresses only, so a stray scheme or path is caught here.
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(item);
    const port = match?.[3] === undefined ? defaultPort : Number(match[3]);
    if (!match || port < 1 || port > 65535) return fail(`${JSON.stringify(item)} is not host:port`);
    nodes.push({ host: match[1] ?? match[2] ?? '', port });
  }
  return { ok: true, value: nodes };
}

function parseUserinfo(userinfo: string | undefined): Parsed<{ username?: string; password?: string }> {
  if (userinfo === undefined) return { ok: true, value: {} };
  const colon = userinfo.indexOf(':');
  try {
    const username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
    const password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    return {
      ok: true,
      value: { ...(username === '' ? {} : { username }), ...(password === undefined ? {} : { password }) },
    };
  } catch {
    return fail('the credentials are not valid percent-encoding');
  }
}

const fail = (problem: string): { ok: false; problem: string } => ({ ok: false, problem });
