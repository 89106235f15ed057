// Ending sessions while the same user's sessions refresh concurrently, on real Postgres and Redis: no request may
// fail with a 5xx (no deadlock between the row locks), and once logout-all or a password change has answered 204,
// no access or refresh token minted in an ended session may still be accepted.
import t from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import {
  bearer,
  codeOf,
  login,
  me,
  type Response,
  refresh,
  register,
  STRONG_PASSWORD,
} from '../../helpers/session-flow.js';

const { app } = await buildTestApp(t);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Outcome {
  statuses: Record<string, number>;
  fiveHundreds: string[];
  /** Access tokens from 200 refreshes in sessions the 204 ended, still accepted afterwards. */
  survivingAccess: number;
  survivingRefresh: number;
  ended: number;
}

function tally(outcome: Outcome, responses: Response[]) {
  for (const response of responses) {
    const key = `${response.statusCode}${codeOf(response) ? ` ${codeOf(response)}` : ''}`;
    outcome.statuses[key] = (outcome.statuses[key] ?? 0) + 1;
    if (response.statusCode >= 500) outcome.fiveHundreds.push(response.body);
  }
}

async function survivors(outcome: Outcome, refreshes: Response[]) {
  for (const response of refreshes) {
    if (response.statusCode !== 200) continue;
    const { accessToken, refreshToken } = response.json();
    if ((await me(app, accessToken)).statusCode !== 401) outcome.survivingAccess++;
    if ((await refresh(app, refreshToken)).statusCode !== 401) outcome.survivingRefresh++;
  }
}

// Both races once failed: a lock-order inversion (refresh locked the session, then the user; logout-all and the
// password change the user, then the sessions) deadlocked into 500s, and logout-all read its not-before time before
// holding the user row, so a racing refresh could mint a token that survived. One lock order now: user, session,
// refresh token.

t.test('logout-all racing refreshes of the same sessions', async (t) => {
  const outcome: Outcome = { statuses: {}, fiveHundreds: [], survivingAccess: 0, survivingRefresh: 0, ended: 0 };
  for (let round = 0; round < 6; round++) {
    const account = await register(app);
    const sessions = await Promise.all(Array.from({ length: 6 }, () => login(app, account)));
    const caller = sessions[0];
    if (!caller) throw new Error('no session');
    const before = sessions.map((session) => refresh(app, session.refreshToken));
    const logoutAll = app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(caller.accessToken) });
    // Inside the grace interval: the same tokens again, racing the logout-all.
    const after = sessions.map((session) => refresh(app, session.refreshToken));
    const refreshes = await Promise.all([...before, ...after]);
    const ended = await logoutAll;
    tally(outcome, [...refreshes, ended]);
    if (ended.statusCode !== 204) continue;
    outcome.ended++;
    await survivors(outcome, refreshes);
    for (const session of sessions) {
      if ((await me(app, session.accessToken)).statusCode !== 401) outcome.survivingAccess++;
    }
  }
  t.comment(JSON.stringify({ ...outcome, fiveHundreds: outcome.fiveHundreds.length }));
  t.ok(outcome.ended > 0, 'some logout-all answered 204');

  t.test('no 5xx', async (t) => {
    t.strictSame(outcome.fiveHundreds, [], 'no 5xx responses');
  });
  t.test('after 204, every token of the ended sessions is rejected', async (t) => {
    t.equal(outcome.survivingAccess, 0, 'no access token survives logout-all');
    t.equal(outcome.survivingRefresh, 0, 'no refresh token survives logout-all');
  });
});

t.test('a password change racing refreshes of the other sessions', async (t) => {
  const outcome: Outcome = { statuses: {}, fiveHundreds: [], survivingAccess: 0, survivingRefresh: 0, ended: 0 };
  for (let round = 0; round < 4; round++) {
    const account = await register(app);
    const sessions = await Promise.all(Array.from({ length: 5 }, () => login(app, account)));
    const [caller, ...others] = sessions;
    if (!caller) throw new Error('no session');
    const change = app.inject({
      method: 'POST',
      url: '/auth/password',
      headers: bearer(caller.accessToken),
      payload: { currentPassword: STRONG_PASSWORD, newPassword: `a new passphrase for round ${round}` },
    });
    // Spread over the password hashing, so some refreshes hold a session lock when the change reaches its locks.
    const refreshes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        sleep(i * 8).then(() => refresh(app, others[i % others.length]?.refreshToken as string)),
      ),
    );
    const changed = await change;
    tally(outcome, [...refreshes, changed]);
    if (changed.statusCode !== 204) continue;
    outcome.ended++;
    await survivors(outcome, refreshes);
  }
  t.comment(JSON.stringify({ ...outcome, fiveHundreds: outcome.fiveHundreds.length }));

  t.test('no 5xx', async (t) => {
    t.strictSame(outcome.fiveHundreds, [], 'no 5xx responses');
  });
  t.test('after 204, every token of the other sessions is rejected', async (t) => {
    t.equal(outcome.survivingAccess, 0, 'no access token of another session survives');
    t.equal(outcome.survivingRefresh, 0, 'no refresh token of another session survives');
  });
});
