// The batcher behind GET /users/me: lookups made in one turn of the event loop share a query, every caller gets the
// row of its own key and no other, a lookup never rides on a query sent before it was asked, and a failed query
// fails only the callers it carried.
import t from 'tap';
import { BatchedLookup } from '../../src/lib/batched-lookup.js';

interface Row {
  key: string;
  batch: number;
}

/** A loader that records every batch and answers each when the test says so. */
function recordingLoader(options: { missing?: Set<string> } = {}) {
  const batches: string[][] = [];
  const answers: { resolve(): void; reject(error: Error): void }[] = [];
  const loadMany = (keys: string[]) =>
    new Promise<Map<string, Row>>((resolve, reject) => {
      const batch = batches.push([...keys]);
      const rows = new Map(
        keys.filter((key) => !options.missing?.has(key)).map((key) => [key, { key, batch }] as [string, Row]),
      );
      answers.push({ resolve: () => resolve(rows), reject });
    });
  // A few turns of the event loop: a query's answer reaches its callers first, and the next batch goes a turn later.
  const turn = async () => {
    for (let index = 0; index < 3; index += 1) await new Promise((resolve) => setImmediate(resolve));
  };
  return { batches, answers, loadMany, turn };
}

t.test('lookups made in the same turn go out as one query; each caller gets its own row', async (t) => {
  const loader = recordingLoader({ missing: new Set(['ghost']) });
  const lookup = new BatchedLookup<Row>(loader.loadMany);
  const keys = ['a', 'b', 'a', 'c', 'ghost', 'b'];
  const results = Promise.all(keys.map((key) => lookup.load(key)));
  await loader.turn();
  t.same(loader.batches, [['a', 'b', 'c', 'ghost']], 'one query, each key once, in the order asked');
  loader.answers[0]?.resolve();
  const rows = await results;
  t.same(
    rows.map((row) => row?.key),
    ['a', 'b', 'a', 'c', undefined, 'b'],
    'every caller has the row of its own key, and a key not found is undefined',
  );
});

t.test('a lookup asked while a query is in flight is not answered by it', async (t) => {
  const loader = recordingLoader();
  const lookup = new BatchedLookup<Row>(loader.loadMany, { maxBatch: 64, maxInFlight: 1 });
  const first = lookup.load('a');
  await loader.turn();
  t.equal(loader.batches.length, 1, 'the first query is out');
  // Asked after the first query left: a write committed in between must be seen, so it needs a query of its own.
  const second = lookup.load('a');
  const third = lookup.load('b');
  await loader.turn();
  t.equal(loader.batches.length, 1, 'nothing more goes out while the one allowed query is in flight');
  loader.answers[0]?.resolve();
  t.equal((await first)?.batch, 1);
  await loader.turn();
  t.same(loader.batches[1], ['a', 'b'], 'the later lookups went out together once the first query returned');
  loader.answers[1]?.resolve();
  t.same([(await second)?.batch, (await third)?.batch], [2, 2], 'answered by the query sent after they were asked');
});

t.test('batches are capped in size and in number at once', async (t) => {
  const loader = recordingLoader();
  const lookup = new BatchedLookup<Row>(loader.loadMany, { maxBatch: 3, maxInFlight: 2 });
  const keys = Array.from({ length: 10 }, (_, index) => `k${index}`);
  const results = Promise.all(keys.map((key) => lookup.load(key)));
  await loader.turn();
  t.same(
    loader.batches,
    [
      ['k0', 'k1', 'k2'],
      ['k3', 'k4', 'k5'],
    ],
    'two queries of three',
  );
  loader.answers[0]?.resolve();
  await loader.turn();
  t.same(loader.batches[2], ['k6', 'k7', 'k8'], 'a slot freed, the next three went');
  loader.answers[1]?.resolve();
  await loader.turn();
  t.same(loader.batches[3], ['k9']);
  loader.answers[2]?.resolve();
  loader.answers[3]?.resolve();
  t.same(
    (await results).map((row) => row?.key),
    keys,
  );
});

t.test('a failed query rejects the callers it carried, and only them', async (t) => {
  const loader = recordingLoader();
  const lookup = new BatchedLookup<Row>(loader.loadMany, { maxBatch: 2, maxInFlight: 2 });
  const carried = [lookup.load('a'), lookup.load('b')];
  const other = lookup.load('c');
  await loader.turn();
  loader.answers[0]?.reject(new Error('connection lost'));
  loader.answers[1]?.resolve();
  for (const result of carried) await t.rejects(result, /connection lost/);
  t.equal((await other)?.key, 'c', 'the other batch was answered');
  const later = lookup.load('a');
  await loader.turn();
  loader.answers[2]?.resolve();
  t.equal((await later)?.key, 'a', 'and the lookup works again after the failure');
});

t.test('a loader that throws at once rejects its callers instead of escaping', async (t) => {
  const lookup = new BatchedLookup<Row>(() => {
    throw new Error('bad statement');
  });
  await t.rejects(lookup.load('a'), /bad statement/);
});
