// GET /users/me reads users in batches (src/lib/batched-lookup.ts): requests that arrive together share one query.
// On real Postgres: every caller gets its own profile and nobody else's, a write that committed before a request is
// seen by it even with other batches in flight, and a user missing from a batch fails only that user's request.
import pg from 'pg';
import t from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import { assertError, type LoggedIn, me, registerAndLogin } from '../../helpers/session-flow.js';

const { app, databaseUrl } = await buildTestApp(t, { env: { EMAIL_VERIFICATION: 'off' } });
const sql = new pg.Client({ connectionString: databaseUrl });
await sql.connect();
t.teardown(() => sql.end());

const USERS = 24;
const callers: LoggedIn[] = [];
for (let index = 0; index < USERS; index += 1) callers.push(await registerAndLogin(app));

/** Every caller several times over, interleaved, all sent at once (inject starts them in the same turn). */
const crowd = (times: number) =>
  Array.from({ length: USERS * times }, (_, index) => callers[(index * 7) % USERS] as LoggedIn);

t.test('hundreds of concurrent requests: each gets its own user, never another caller', async (t) => {
  for (let round = 0; round < 5; round += 1) {
    const senders = crowd(10);
    const responses = await Promise.all(senders.map((caller) => me(app, caller.accessToken)));
    const wrong = responses.filter((response, index) => {
      const sender = senders[index] as LoggedIn;
      const user = response.statusCode === 200 ? response.json().user : undefined;
      return user?.id !== sender.account.id || user?.email !== sender.account.email;
    });
    t.equal(wrong.length, 0, `round ${round + 1}: ${senders.length} answers, every one the sender's own profile`);
  }
});

t.test('a write committed before a request is seen by it, with other reads in flight', async (t) => {
  const target = callers[0] as LoggedIn;
  for (let round = 0; round < 20; round += 1) {
    // Batches go out and stay in flight while the write commits...
    const background = Promise.all(crowd(4).map((caller) => me(app, caller.accessToken)));
    const name = `name ${round}`;
    await sql.query('UPDATE users SET name = $1 WHERE id = $2', [name, target.account.id]);
    // ...and the request sent after the commit must not be answered by a query sent before it.
    const after = await me(app, target.accessToken);
    t.equal(after.json().user.name, name, `round ${round + 1}: the new name`);
    t.ok(
      (await background).every((response) => response.statusCode === 200),
      'the reads around it were answered',
    );
  }
});

t.test('a user gone from the database fails only its own request in the batch', async (t) => {
  const gone = callers[USERS - 1] as LoggedIn;
  // Deleted behind the service's back, so its tokens are not deny-listed: the read itself finds no row.
  await sql.query('DELETE FROM users WHERE id = $1', [gone.account.id]);
  const senders = crowd(3);
  const responses = await Promise.all(senders.map((caller) => me(app, caller.accessToken)));
  responses.forEach((response, index) => {
    const sender = senders[index] as LoggedIn;
    if (sender === gone) assertError(t, response, 401, 'TOKEN_REVOKED', 'the deleted user');
    else if (response.statusCode !== 200 || response.json().user.id !== sender.account.id)
      t.fail(`caller ${index} got ${response.statusCode} ${response.body}`);
  });
  t.pass(`${senders.length - 3} others answered with their own profiles`);
});
