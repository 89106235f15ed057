// Store on Redis: shared by every instance; each key's TTL ends its entry, so nothing needs pruning.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { DependencyUnavailable } from '../errors.js';
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

interface ScriptedRedis extends Redis {
  hitCounter(key: string, windowMs: number): Promise<[number, number]>;
  releaseCounter(key: string): Promise<number>;
  raiseMinVersion(key: string, minVersion: number, ttlMs: number): Promise<number>;
  releaseLock(key: string, token: string): Promise<number>;
}

export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  onError: (error: Error) => void;
}

export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly #redis: ScriptedRedis;

  private constructor(redis: ScriptedRedis) {
    this.#redis = redis;
  }

  /** Connects, but boots even if Redis is down: requests then fail closed (503) until it answers. */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const redis = new Redis(options.url, {
      keyPrefix: options.keyPrefix,
      lazyConnect: true,
      enableAutoPipelining: true,
      connectTimeout: 2_000,
      commandTimeout: 1_000,
      maxRetriesPerRequest: 1,
      // Fail at once while disconnected instead of queueing requests behind a dead server.
      enableOfflineQueue: false,
      retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
    }) as ScriptedRedis;
    redis.defineCommand('hitCounter', { numberOfKeys: 1, lua: HIT_SCRIPT });
    redis.defineCommand('releaseCounter', { numberOfKeys: 1, lua: RELEASE_COUNTER_SCRIPT });
    redis.defineCommand('raiseMinVersion', { numberOfKeys: 1, lua: RAISE_SCRIPT });
    redis.defineCommand('releaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK_SCRIPT });
    redis.on('error', options.onError);
    await redis.connect().catch(options.onError);
    return new RedisStore(redis);
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
    return toRevocationState(token ?? null, session ?? null, user ?? null, epoch ?? null);
  }

  async markSynced(): Promise<void> {
    await this.#run(() => this.#redis.set(denyKey.epoch, String(Date.now())));
  }

  async lockRebuild(ttlMs: number): Promise<(() => Promise<void>) | null> {
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
