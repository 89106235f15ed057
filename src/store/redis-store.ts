// Store on Redis: shared by every instance; each key's TTL ends its entry, so nothing needs pruning. One server,
// a Sentinel-monitored master or a Cluster, through ioredis's own support for each (no sharding of ours).
import { randomUUID } from 'node:crypto';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { DependencyUnavailable } from '../errors.js';
import type { RedisTarget } from './redis-target.js';
import {
  type CounterState,
  counterKey,
  denyKey,
  type EvictionCheck,
  type RevocationState,
  type Store,
  toRevocationState,
} from './store.js';

// Atomic so that concurrent hits never leave a counter without an expiry.
const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}`;

// Atomic so that a release never resurrects an expired counter or drops another request's hit; DECR keeps the TTL.
const RELEASE_COUNTER_SCRIPT = `
local count = tonumber(redis.call('GET', KEYS[1]))
if count == nil then return 0 end
if count <= 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
return redis.call('DECR', KEYS[1])`;

// Keeps the larger minimum version, and the longer TTL, when two changes (or a change and a rebuild) race.
const RAISE_SCRIPT = `
local ttl = math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[1]))
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1`;

// Deletes the lock only if it is still ours (it may have expired and been taken by another instance).
const RELEASE_LOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface Scripts {
  hitCounter(key: string, windowMs: number): Promise<[number, number]>;
  releaseCounter(key: string): Promise<number>;
  raiseMinVersion(key: string, minVersion: number, ttlMs: number): Promise<number>;
  releaseLock(key: string, token: string): Promise<number>;
}
type ScriptedRedis = (Redis | Cluster) & Scripts;

export interface RedisStoreOptions {
  /** Where Redis is (see redis-target.ts); a string is one server's redis[s]:// URL. */
  target: RedisTarget | string;
  keyPrefix: string;
  onError: (error: Error) => void;
}

// Bounded everywhere: a request waits at most about a second for Redis before it is answered 503.
const CONNECTION: RedisOptions = {
  // Named in CLIENT LIST, for operators (and tests) telling this service's connections apart.
  connectionName: 'auth-service',
  connectTimeout: 2_000,
  commandTimeout: 1_000,
  maxRetriesPerRequest: 1,
  // A demoted master (Sentinel failover, a managed service's switch-over) answers writes with READONLY: reconnect,
  // which asks the sentinels (or DNS) for the master again. 1, not 2: the command fails (503) instead of waiting.
  reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 1 : false),
};
const retryStrategy = (attempt: number) => Math.min(attempt * 100, 2_000);
const BOOT_WAIT_MS = 3_000;

function connect(target: RedisTarget, keyPrefix: string): Redis | Cluster {
  // Fail at once while disconnected instead of queueing requests behind a dead server.
  const common = { keyPrefix, lazyConnect: true, enableAutoPipelining: true, enableOfflineQueue: false } as const;
  if (target.mode === 'single') return new Redis(target.url, { ...common, ...CONNECTION, retryStrategy });
  const { username, password } = target;
  if (target.mode === 'sentinel') {
    return new Redis({
      ...common,
      ...CONNECTION,
      retryStrategy,
      sentinels: target.sentinels,
      name: target.name,
      role: 'master',
      username,
      password,
      sentinelPassword: target.sentinelPassword,
      ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      // Every sentinel unreachable: try them again later (null would end the client for good).
      sentinelRetryStrategy: retryStrategy,
      // No failoverDetector: its sentinel subscriptions outlived quit() (ioredis 5.11) and it is not needed: a
      // sentinel demoting a master kills that master's client connections (CLIENT KILL TYPE normal), and a write
      // that reaches it first gets READONLY; either way this client reconnects and asks the sentinels again.
    });
  }
  const options: ClusterOptions = {
    ...common,
    // Replicas lag behind their master: a read there could miss a revocation just written.
    scaleReads: 'master',
    clusterRetryStrategy: retryStrategy,
    slotsRefreshTimeout: 2_000,
    // MOVED/ASK/CLUSTERDOWN retries, bounded so that a request still gets its 503 within about a second.
    maxRedirections: 6,
    retryDelayOnClusterDown: 150,
    retryDelayOnFailover: 150,
    redisOptions: { ...CONNECTION, username, password, ...(target.tls ? { tls: {} } : {}) },
  };
  return new Cluster(target.nodes, options);
}

export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly #redis: ScriptedRedis;
  // Bumped on every (re)connection. A Sentinel or Cluster failover promotes a replica that may lack the last
  // acknowledged writes (replication is asynchronous) yet holds the epoch: the epoch alone would vouch for a
  // deny-list missing entries. So this instance trusts the store only after a rebuild done on its current connection.
  #generation = 0;
  #rebuildGeneration: number | undefined;
  #syncedGeneration = -1;

  private constructor(redis: ScriptedRedis) {
    this.#redis = redis;
    const reconnected = () => {
      this.#generation += 1;
    };
    redis.on('ready', reconnected);
    // A Cluster reconnects node by node: a failed-over master shows up as a node removed and another added.
    if (redis instanceof Cluster) redis.on('+node', reconnected).on('-node', reconnected);
  }

  /** Connects, but boots even if Redis is down: requests then fail closed (503) until it answers. */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const target: RedisTarget =
      typeof options.target === 'string' ? { mode: 'single', url: options.target } : options.target;
    const redis = connect(target, options.keyPrefix) as ScriptedRedis;
    redis.defineCommand('hitCounter', { numberOfKeys: 1, lua: HIT_SCRIPT });
    redis.defineCommand('releaseCounter', { numberOfKeys: 1, lua: RELEASE_COUNTER_SCRIPT });
    redis.defineCommand('raiseMinVersion', { numberOfKeys: 1, lua: RAISE_SCRIPT });
    redis.defineCommand('releaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK_SCRIPT });
    redis.on('error', options.onError);
    const store = new RedisStore(redis);
    // Sentinel and Cluster clients retry inside connect(): boot waits for a first answer only so long.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      redis.connect().catch(options.onError),
      new Promise((resolve) => {
        timer = setTimeout(resolve, BOOT_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    return store;
  }

  async #run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw new DependencyUnavailable('redis', error);
    }
  }

  async revokeToken(jti: string, ttlMs: number): Promise<void> {
    await this.#run(() => this.#redis.set(denyKey.token(jti), '1', 'PX', positive(ttlMs)));
  }

  async revokeSession(sid: string, ttlMs: number): Promise<void> {
    await this.#run(() => this.#redis.set(denyKey.session(sid), '1', 'PX', positive(ttlMs)));
  }

  async raiseUserMinVersion(sub: string, minVersion: number, ttlMs: number): Promise<void> {
    await this.#run(() => this.#redis.raiseMinVersion(denyKey.user(sub), minVersion, positive(ttlMs)));
  }

  async revocationState(jti: string, sid: string, sub: string): Promise<RevocationState> {
    const [token, session, user, epoch] = await this.#run(() =>
      this.#redis.mget(denyKey.token(jti), denyKey.session(sid), denyKey.user(sub), denyKey.epoch),
    );
    const trusted = this.#syncedGeneration === this.#generation;
    return toRevocationState(token ?? null, session ?? null, user ?? null, trusted ? (epoch ?? null) : null);
  }

  async markSynced(): Promise<void> {
    // The rebuild's writes count only if they all went over the connection this instance now uses.
    // Otherwise no epoch either: it would vouch, for every instance, for entries that may be missing. The verifier
    // then still sees `synced: false`, and the next request rebuilds again.
    const generation = this.#rebuildGeneration ?? this.#generation;
    if (generation !== this.#generation) return;
    await this.#run(() => this.#redis.set(denyKey.epoch, String(Date.now())));
    if (generation === this.#generation) this.#syncedGeneration = generation;
  }

  async lockRebuild(ttlMs: number): Promise<(() => Promise<void>) | null> {
    this.#rebuildGeneration = this.#generation;
    const token = randomUUID();
    const taken = await this.#run(() => this.#redis.set(denyKey.rebuildLock, token, 'PX', positive(ttlMs), 'NX'));
    if (taken !== 'OK') return null;
    return async () => {
      await this.#run(() => this.#redis.releaseLock(denyKey.rebuildLock, token));
    };
  }

  async checkEviction(): Promise<EvictionCheck> {
    try {
      // CONFIG is often renamed or disabled on managed Redis: then the policy cannot be known from here.
      const reply = (await this.#redis.config('GET', 'maxmemory-policy')) as unknown as string[];
      const policy = reply[1];
      if (typeof policy !== 'string') return { policy: null, reason: 'CONFIG GET returned no maxmemory-policy' };
      return { policy, safe: policy === 'noeviction' };
    } catch (error) {
      return { policy: null, reason: (error as Error).message };
    }
  }

  async hit(key: string, windowMs: number): Promise<CounterState> {
    const [count, ttl] = await this.#run(() => this.#redis.hitCounter(counterKey(key), positive(windowMs)));
    return { count, resetInMs: Math.max(ttl, 0) };
  }

  async release(key: string): Promise<number> {
    return this.#run(() => this.#redis.releaseCounter(counterKey(key)));
  }

  async peek(key: string): Promise<CounterState> {
    const [count, ttl] = await this.#run(() =>
      Promise.all([this.#redis.get(counterKey(key)), this.#redis.pttl(counterKey(key))]),
    );
    return { count: count === null ? 0 : Number(count), resetInMs: Math.max(ttl, 0) };
  }

  async reset(key: string): Promise<void> {
    await this.#run(() => this.#redis.del(counterKey(key)));
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#redis.ping());
  }

  connectionStatus(): string {
    return this.#redis.status;
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

// Redis rejects PX 0; an entry that should already be gone gets the shortest life instead.
const positive = (ms: number) => Math.max(1, Math.ceil(ms));
