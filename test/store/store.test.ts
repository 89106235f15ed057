import { randomBytes, randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { DependencyUnavailable } from '../../src/errors.js';
import { EmbeddedStore } from '../../src/store/embedded-store.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { denyKey, type Store } from '../../src/store/store.js';
import { TestClock } from '../helpers/clock.js';
import { testServers } from '../helpers/servers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `done()` holds, for at most `timeoutMs`; returns whether it did. */
async function eventually(done: () => Promise<boolean>, timeoutMs = 2_000, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

const id = () => randomUUID();

async function tempDir(t: Test, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The behaviour every Store must share, whatever holds the data. */
function storeSuite(t: Test, open: (t: Test) => Promise<Store>): void {
  t.test('a fresh subject is not revoked', async (t) => {
    const store = await open(t);
    t.match(await store.revocationState(id(), id(), id()), {
      tokenRevoked: false,
      sessionRevoked: false,
      userMinVersion: null,
    });
  });

  t.test('revokeToken deny-lists that jti only', async (t) => {
    const store = await open(t);
    const [jti, sid, sub] = [id(), id(), id()];
    await store.revokeToken(jti, 60_000);
    t.match(await store.revocationState(jti, sid, sub), {
      tokenRevoked: true,
      sessionRevoked: false,
      userMinVersion: null,
    });
    t.equal((await store.revocationState(id(), sid, sub)).tokenRevoked, false, 'another jti is not revoked');
  });

  t.test('revokeSession deny-lists that session only', async (t) => {
    const store = await open(t);
    const [jti, sid, sub] = [id(), id(), id()];
    await store.revokeSession(sid, 60_000);
    t.match(await store.revocationState(jti, sid, sub), {
      tokenRevoked: false,
      sessionRevoked: true,
      userMinVersion: null,
    });
    t.equal((await store.revocationState(jti, id(), sub)).sessionRevoked, false, 'another session is not revoked');
  });

  t.test('raiseUserMinVersion records the minimum token version', async (t) => {
    const store = await open(t);
    const sub = id();
    const notBefore = 7;
    await store.raiseUserMinVersion(sub, notBefore, 60_000);
    t.match(await store.revocationState(id(), id(), sub), {
      tokenRevoked: false,
      sessionRevoked: false,
      userMinVersion: notBefore,
    });
    t.equal((await store.revocationState(id(), id(), id())).userMinVersion, null, 'another user is untouched');
  });

  t.test('raiseUserMinVersion raises the minimum version but never lowers it', async (t) => {
    const store = await open(t);
    const sub = id();
    const state = async () => (await store.revocationState(id(), id(), sub)).userMinVersion;
    await store.raiseUserMinVersion(sub, 10, 60_000);
    await store.raiseUserMinVersion(sub, 20, 60_000);
    t.equal(await state(), 20, 'raised');
    await store.raiseUserMinVersion(sub, 15, 60_000);
    t.equal(await state(), 20, 'a lower value is ignored');
    await store.raiseUserMinVersion(sub, 21, 60_000);
    t.equal(await state(), 21, 'one higher still raises it');
  });

  t.test('a lower version does not shorten the entry', async (t) => {
    const store = await open(t);
    const sub = id();
    await store.raiseUserMinVersion(sub, 20, 60_000);
    await store.raiseUserMinVersion(sub, 10, 100);
    await sleep(250);
    t.equal((await store.revocationState(id(), id(), sub)).userMinVersion, 20);
  });

  const raiseTitle = 'a raise with a shorter TTL keeps the longer life';
  t.test(raiseTitle, async (t) => {
    const store = await open(t);
    const sub = id();
    await store.raiseUserMinVersion(sub, 10, 60_000);
    await store.raiseUserMinVersion(sub, 20, 100);
    await sleep(250);
    t.equal((await store.revocationState(id(), id(), sub)).userMinVersion, 20);
  });

  t.test('deny-list entries disappear once their TTL has passed', async (t) => {
    const store = await open(t);
    const [jti, sid, sub] = [id(), id(), id()];
    await store.revokeToken(jti, 150);
    await store.revokeSession(sid, 150);
    await store.raiseUserMinVersion(sub, 3, 150);
    const revoked = await store.revocationState(jti, sid, sub);
    t.match(revoked, { tokenRevoked: true, sessionRevoked: true, userMinVersion: Number });
    const gone = await eventually(async () => {
      const state = await store.revocationState(jti, sid, sub);
      return !state.tokenRevoked && !state.sessionRevoked && state.userMinVersion === null;
    });
    t.ok(gone, 'every entry expired within 2 s of a 150 ms TTL');
  });

  t.test('hit() counts within a window and starts over after it', async (t) => {
    const store = await open(t);
    const key = `login:${id()}`;
    const first = await store.hit(key, 300);
    t.equal(first.count, 1);
    t.ok(first.resetInMs > 0 && first.resetInMs <= 300, `resetInMs ${first.resetInMs} is within the window`);
    t.equal((await store.hit(key, 300)).count, 2);
    const third = await store.hit(key, 300);
    t.equal(third.count, 3);
    t.ok(third.resetInMs <= first.resetInMs, 'later hits do not extend the window');
    t.equal((await store.hit(`login:${id()}`, 300)).count, 1, 'another key has its own counter');

    const restarted = await eventually(async () => (await store.peek(key)).count === 0, 2_000);
    t.ok(restarted, 'the counter is gone after the window');
    t.equal((await store.hit(key, 300)).count, 1, 'a new window starts at 1');
  });

  t.test('peek() reads without counting', async (t) => {
    const store = await open(t);
    const key = `register:${id()}`;
    t.same(await store.peek(key), { count: 0, resetInMs: 0 }, 'an unknown counter is zero');
    t.same(await store.peek(key), { count: 0, resetInMs: 0 }, 'peeking did not create it');
    await store.hit(key, 60_000);
    await store.hit(key, 60_000);
    const peeked = await store.peek(key);
    t.equal(peeked.count, 2);
    t.ok(peeked.resetInMs > 59_000 && peeked.resetInMs <= 60_000, `resetInMs ${peeked.resetInMs}`);
    t.equal((await store.peek(key)).count, 2, 'still 2 after peeking twice');
    t.equal((await store.hit(key, 60_000)).count, 3);
  });

  t.test('reset() deletes a counter', async (t) => {
    const store = await open(t);
    const key = `failures:${id()}`;
    const other = `failures:${id()}`;
    await store.hit(key, 60_000);
    await store.hit(key, 60_000);
    await store.hit(other, 60_000);
    await store.reset(key);
    t.same(await store.peek(key), { count: 0, resetInMs: 0 });
    t.equal((await store.hit(key, 60_000)).count, 1, 'counting starts over');
    t.equal((await store.peek(other)).count, 1, 'other counters are untouched');
    await store.reset(`failures:${id()}`);
    t.pass('resetting an unknown counter is harmless');
  });

  t.test('release() takes one back, keeps the window, and deletes a counter that reaches 0', async (t) => {
    const store = await open(t);
    const key = `failures:${id()}`;
    await store.hit(key, 60_000);
    await store.hit(key, 60_000);
    const before = await store.peek(key);
    await sleep(20);
    t.equal(await store.release(key), 1, 'one left');
    const after = await store.peek(key);
    t.equal(after.count, 1);
    t.ok(after.resetInMs > 0 && after.resetInMs <= before.resetInMs, `the window is kept (${after.resetInMs} ms)`);
    t.equal((await store.hit(key, 60_000)).count, 2, 'hits count on from there');
    t.equal(await store.release(key), 1);
    t.equal(await store.release(key), 0, 'none left');
    t.same(await store.peek(key), { count: 0, resetInMs: 0 }, 'the counter is gone');
    t.equal(await store.release(key), 0, 'releasing an absent counter is harmless');
    t.same(await store.peek(key), { count: 0, resetInMs: 0 }, 'and does not create it');
    t.equal((await store.hit(key, 60_000)).count, 1, 'a new window starts at 1');
  });

  t.test('hit() and release() are atomic under concurrency', async (t) => {
    const store = await open(t);
    const key = `failures:${id()}`;
    const hits = await Promise.all(Array.from({ length: 30 }, () => store.hit(key, 60_000)));
    t.same(
      hits.map((hit) => hit.count).sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, index) => index + 1),
      'every hit got its own count',
    );
    const left = await Promise.all(Array.from({ length: 20 }, () => store.release(key)));
    t.same(
      left.sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, index) => index + 10),
      'every release took exactly one',
    );
    t.equal((await store.peek(key)).count, 10);
    await Promise.all(Array.from({ length: 15 }, () => store.release(key)));
    t.same(await store.peek(key), { count: 0, resetInMs: 0 }, 'never below zero');
  });

  t.test('ping() answers', async (t) => {
    const store = await open(t);
    await t.resolves(store.ping());
  });
}

t.test('RedisStore', async (t) => {
  const { redisUrl } = await testServers();
  const keyPrefix = `test:store:${randomBytes(6).toString('hex')}:`;
  const raw = new Redis(redisUrl, { keyPrefix, lazyConnect: true });
  await raw.connect();
  t.teardown(async () => {
    // KEYS does not apply the client's prefix to its pattern, so match the full key.
    const keys = await raw.keys(`${keyPrefix}*`);
    if (keys.length > 0) await raw.del(...keys.map((key) => key.slice(keyPrefix.length)));
    await raw.quit();
  });

  const open = async (t: Test) => {
    const store = await RedisStore.open({ target: redisUrl, keyPrefix, onError: (error) => t.error(error) });
    t.teardown(() => store.close());
    return store;
  };

  t.test('shared behaviour', async (t) => storeSuite(t, open));

  t.test('deny-list keys carry their TTL in Redis', async (t) => {
    const store = await open(t);
    const [jti, sid, sub] = [id(), id(), id()];
    await store.revokeToken(jti, 60_000);
    await store.revokeSession(sid, 30_000);
    await store.raiseUserMinVersion(sub, 3, 45_000);
    const within = (ttl: number, expected: number) => ttl > expected - 2_000 && ttl <= expected;
    const tokenTtl = await raw.pttl(denyKey.token(jti));
    const sessionTtl = await raw.pttl(denyKey.session(sid));
    const userTtl = await raw.pttl(denyKey.user(sub));
    t.ok(within(tokenTtl, 60_000), `jti PTTL ${tokenTtl}`);
    t.ok(within(sessionTtl, 30_000), `sid PTTL ${sessionTtl}`);
    t.ok(within(userTtl, 45_000), `sub PTTL ${userTtl}`);

    await store.raiseUserMinVersion(sub, 0, 90_000);
    const extended = await raw.pttl(denyKey.user(sub));
    t.ok(within(extended, 90_000), `a longer TTL extends the version entry (PTTL ${extended})`);
  });

  t.test(
    'the epoch: absent on a fresh deny-list, present once marked synced, read in the same round trip',
    async (t) => {
      const store = await open(t);
      t.equal((await store.revocationState(id(), id(), id())).synced, false, 'a Redis without the epoch is not synced');
      await store.markSynced();
      t.equal((await store.revocationState(id(), id(), id())).synced, true, 'synced once marked');
      t.equal(await raw.pttl(denyKey.epoch), -1, 'the epoch has no TTL');
      await raw.del(denyKey.epoch);
      t.equal((await store.revocationState(id(), id(), id())).synced, false, 'a lost epoch is noticed');
    },
  );

  t.test('the rebuild lock: one holder at a time, released only by its holder', async (t) => {
    const [a, b] = [await open(t), await open(t)];
    const release = await a.lockRebuild(10_000);
    t.ok(release, 'the first instance takes it');
    t.equal(await b.lockRebuild(10_000), null, 'the second does not');
    await release?.();
    const again = await b.lockRebuild(10_000);
    t.ok(again, 'free again once released');
    await release?.();
    t.equal(await a.lockRebuild(10_000), null, 'a stale release does not free the new holder’s lock');
    await again?.();
  });

  t.test('checkEviction reads maxmemory-policy', async (t) => {
    const store = await open(t);
    const check = await store.checkEviction();
    t.ok(check.policy === null || typeof check.policy === 'string', `policy ${JSON.stringify(check)}`);
  });

  t.test('counter keys expire with their window', async (t) => {
    const store = await open(t);
    const key = `login:${id()}`;
    await store.hit(key, 30_000);
    await store.hit(key, 30_000);
    const ttl = await raw.pttl(`count:${key}`);
    t.ok(ttl > 28_000 && ttl <= 30_000, `counter PTTL ${ttl}`);
    await store.release(key);
    const released = await raw.pttl(`count:${key}`);
    t.ok(released > 0 && released <= ttl, `a release keeps the expiry (PTTL ${released})`);
  });

  t.test('two instances share revocations and counters', async (t) => {
    const [a, b] = [await open(t), await open(t)];
    const jti = id();
    await a.revokeToken(jti, 60_000);
    t.equal((await b.revocationState(jti, id(), id())).tokenRevoked, true);
    const key = `login:${id()}`;
    await a.hit(key, 60_000);
    t.equal((await b.hit(key, 60_000)).count, 2);
  });

  t.test('a store whose Redis is unreachable fails closed, quickly', async (t) => {
    const errors: Error[] = [];
    const started = Date.now();
    const store = await RedisStore.open({ target: 'redis://127.0.0.1:1', keyPrefix, onError: (e) => errors.push(e) });
    t.teardown(() => store.close());
    t.ok(Date.now() - started < 5_000, 'open() does not hang on a dead server');
    const operations: [string, () => Promise<unknown>][] = [
      ['revokeToken', () => store.revokeToken(id(), 1_000)],
      ['revokeSession', () => store.revokeSession(id(), 1_000)],
      ['raiseUserMinVersion', () => store.raiseUserMinVersion(id(), 3, 1_000)],
      ['revocationState', () => store.revocationState(id(), id(), id())],
      ['hit', () => store.hit(id(), 1_000)],
      ['release', () => store.release(id())],
      ['peek', () => store.peek(id())],
      ['reset', () => store.reset(id())],
      ['ping', () => store.ping()],
    ];
    for (const [name, operation] of operations) {
      const begun = Date.now();
      const error = await operation().then(
        () => undefined,
        (error: unknown) => error,
      );
      t.type(error, DependencyUnavailable, `${name} rejects with DependencyUnavailable`);
      t.equal((error as DependencyUnavailable | undefined)?.dependency, 'redis', `${name} names redis`);
      t.ok(Date.now() - begun < 3_000, `${name} answered within 3 s`);
    }
    t.ok(errors.length > 0, 'the connection error was reported to onError');
  });
});

t.test('EmbeddedStore', async (t) => {
  const open = async (t: Test) => {
    const store = await EmbeddedStore.open(await tempDir(t, 'auth-store-'));
    t.teardown(() => store.close());
    return store;
  };

  t.test('shared behaviour', async (t) => storeSuite(t, open));

  t.test('the embedded deny-list is always synced (it never loses entries)', async (t) => {
    const store = await open(t);
    t.equal((await store.revocationState(id(), id(), id())).synced, true);
    t.same(await store.checkEviction(), { policy: 'noeviction', safe: true });
  });

  t.test('deny-list entries survive close() and open() on the same folder', async (t) => {
    const dir = await tempDir(t, 'auth-store-');
    const [jti, sid, sub] = [id(), id(), id()];
    const first = await EmbeddedStore.open(dir);
    await first.revokeToken(jti, 60_000);
    await first.revokeSession(sid, 60_000);
    await first.raiseUserMinVersion(sub, 5, 60_000);
    await first.raiseUserMinVersion(sub, 1, 60_000);
    await first.close();

    const second = await EmbeddedStore.open(dir);
    t.teardown(() => second.close());
    t.match(await second.revocationState(jti, sid, sub), {
      tokenRevoked: true,
      sessionRevoked: true,
      userMinVersion: 5,
    });
    const mode = (await stat(path.join(dir, 'deny-list.jsonl'))).mode & 0o777;
    t.equal(mode, 0o600, 'the deny-list file is private');
  });

  t.test('expired entries are dropped on reopen', async (t) => {
    const dir = await tempDir(t, 'auth-store-');
    const clock = new TestClock(1_700_000_000_000);
    const now = () => clock.now();
    const [expiring, lasting] = [id(), id()];
    const first = await EmbeddedStore.open(dir, now);
    await first.revokeToken(expiring, 1_000);
    await first.revokeToken(lasting, 60_000);
    await first.close();

    clock.advance(5_000);
    const second = await EmbeddedStore.open(dir, now);
    t.teardown(() => second.close());
    t.equal((await second.revocationState(expiring, id(), id())).tokenRevoked, false, 'the expired entry is gone');
    t.equal((await second.revocationState(lasting, id(), id())).tokenRevoked, true, 'the live entry remains');
    const file = await readFile(path.join(dir, 'deny-list.jsonl'), 'utf8');
    t.notMatch(file, expiring, 'the expired entry was compacted out of the file');
    t.match(file, lasting);
  });

  t.test('a line torn by a crash does not lose the entries before it', async (t) => {
    const dir = await tempDir(t, 'auth-store-');
    const jti = id();
    const first = await EmbeddedStore.open(dir);
    await first.revokeToken(jti, 60_000);
    await first.close();
    await appendFile(path.join(dir, 'deny-list.jsonl'), '{"key":"deny:jti:torn","val');

    const second = await EmbeddedStore.open(dir);
    t.teardown(() => second.close());
    t.equal((await second.revocationState(jti, id(), id())).tokenRevoked, true);
    const after = id();
    await second.revokeToken(after, 60_000);
    await second.close();
    const third = await EmbeddedStore.open(dir);
    t.teardown(() => third.close());
    t.equal((await third.revocationState(after, id(), id())).tokenRevoked, true, 'writes after the torn line persist');
  });

  t.test('counters may reset on reopen, and keep working', async (t) => {
    const dir = await tempDir(t, 'auth-store-');
    const key = `login:${id()}`;
    const first = await EmbeddedStore.open(dir);
    await first.hit(key, 60_000);
    await first.hit(key, 60_000);
    await first.close();
    const second = await EmbeddedStore.open(dir);
    t.teardown(() => second.close());
    const { count } = await second.peek(key);
    t.ok(count === 0 || count === 2, `the counter is either reset or kept (${count})`);
    t.equal((await second.hit(key, 60_000)).count, count + 1);
  });
});
