// The concurrency limit argon2 runs behind: never more at once than the limit, waiters served in arrival order, and
// beyond the queue's depth a refusal at once (with a Retry-After estimate) rather than a growing backlog.
import t from 'tap';
import { BoundedWorkQueue, QueueFull } from '../../src/lib/bounded-work-queue.js';

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
};

t.test('runs at most `concurrency` tasks at once, and the rest in arrival order', async (t) => {
  const queue = new BoundedWorkQueue(2, 100);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 40 }, (_, index) =>
      queue.run(async () => {
        running += 1;
        peak = Math.max(peak, running);
        order.push(index);
        await new Promise((resolve) => setTimeout(resolve, 1 + (index % 3)));
        running -= 1;
      }),
    ),
  );
  t.equal(peak, 2, 'two at once, never more');
  t.same(
    order,
    [...order].sort((a, b) => a - b),
    'started first come, first served',
  );
  t.same({ running: queue.running, waiting: queue.waiting }, { running: 0, waiting: 0 }, 'all slots given back');
});

t.test('a full queue refuses at once, and takes work again once it drains', async (t) => {
  const queue = new BoundedWorkQueue(1, 2);
  const { open, opened } = gate();
  const accepted = [queue.run(() => opened), queue.run(async () => 'second'), queue.run(async () => 'third')];
  t.equal(queue.waiting, 2);
  const refused = await queue.run(async () => 'fourth').catch((error: unknown) => error);
  t.ok(refused instanceof QueueFull, 'the fourth is refused');
  t.ok((refused as QueueFull).retryAfterSeconds >= 1, 'with a Retry-After of at least a second');
  open();
  t.same((await Promise.all(accepted)).slice(1), ['second', 'third'], 'the queued ones still ran');
  t.equal(await queue.run(async () => 'later'), 'later');
});

t.test('a task that throws gives its slot back', async (t) => {
  const queue = new BoundedWorkQueue(1, 0);
  await t.rejects(
    queue.run(async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  t.equal(await queue.run(async () => 'next'), 'next', 'the slot is free again');
});
