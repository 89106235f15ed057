// Login as one consistent decision, raced on real Postgres and Redis: a login racing a demotion, a password change
// or a deletion never yields a working session with what the race took away, and never answers 5xx.
import t, { type Test } from 'tap';
import { createAdmin, deleteUser, listUsers, loginAdmin, putRoles } from '../../helpers/admin.js';
import { buildTestApp } from '../../helpers/app.js';
import {
  assertError,
  bearer,
  claimsOf,
  codeOf,
  login,
  loginRequest,
  me,
  type Response,
  refresh,
  register,
} from '../../helpers/session-flow.js';

const { app } = await buildTestApp(t);
const ROUNDS = 16;
const actor = await loginAdmin(app);

/** Lets the racing request get going first by `ms` (varied per round, so the interleavings vary). */
const after = <T>(ms: number, run: () => Promise<T>) =>
  new Promise<T>((resolve, reject) => setTimeout(() => run().then(resolve, reject), ms));

const stagger = (round: number) => (round % 8) * 10;

/** The race took the credential away: the login was refused, or the session it got is dead on both counts. */
async function assertRefusedOrRevoked(
  t: Test,
  loggedIn: Response,
  round: number,
  outcomes: { refused: number; revoked: number },
): Promise<void> {
  if (loggedIn.statusCode === 401) {
    outcomes.refused++;
    assertError(t, loggedIn, 401, 'INVALID_CREDENTIALS', `round ${round}: login`);
    return;
  }
  if (loggedIn.statusCode !== 200) {
    t.fail(`round ${round}: login answered ${loggedIn.statusCode} ${codeOf(loggedIn)}`);
    return;
  }
  outcomes.revoked++;
  const { accessToken, refreshToken } = loggedIn.json() as { accessToken: string; refreshToken: string };
  assertError(t, await me(app, accessToken), 401, 'TOKEN_REVOKED', `round ${round}: its access token`);
  assertError(t, await refresh(app, refreshToken), 401, 'REFRESH_TOKEN_INVALID', `round ${round}: its refresh`);
}

t.test('login racing a demotion: never a working token with admin', async (t) => {
  const target = await createAdmin(app);
  const outcomes = { demotedRoles: 0, revoked: 0 };
  for (let round = 1; round <= ROUNDS; round++) {
    const promoted = await putRoles(app, actor.accessToken, target.id, { roles: ['user', 'admin'] });
    t.equal(promoted.statusCode, 200, `round ${round}: the target is an admin again`);
    const [loggedIn, demoted] = await Promise.all([
      loginRequest(app, target.email, target.password),
      after(stagger(round), () => putRoles(app, actor.accessToken, target.id, { roles: ['user'] })),
    ]);
    t.equal(demoted.statusCode, 200, `round ${round}: the demotion succeeded`);
    if (loggedIn.statusCode !== 200) {
      t.fail(`round ${round}: login answered ${loggedIn.statusCode} ${codeOf(loggedIn)}`);
      continue;
    }
    const { accessToken, refreshToken } = loggedIn.json() as { accessToken: string; refreshToken: string };
    const roles = claimsOf(accessToken).roles;
    t.strictSame(loggedIn.json().user.roles.includes('admin'), roles.includes('admin'), `round ${round}: body = token`);
    if (!roles.includes('admin')) {
      outcomes.demotedRoles++;
      t.equal((await me(app, accessToken)).statusCode, 200, `round ${round}: a token without admin works`);
    } else {
      outcomes.revoked++;
      assertError(t, await me(app, accessToken), 401, 'TOKEN_REVOKED', `round ${round}: the admin token`);
      t.not((await listUsers(app, accessToken)).statusCode, 200, `round ${round}: it reads no users`);
    }
    // Whatever the access token said, its refresh mints the roles the user has now.
    const refreshed = await refresh(app, refreshToken);
    t.equal(refreshed.statusCode, 200, `round ${round}: refresh works`);
    t.notOk(claimsOf(refreshed.json().accessToken).roles.includes('admin'), `round ${round}: refresh drops admin`);
  }
  t.comment(`outcomes: ${JSON.stringify(outcomes)}`);
});

t.test('login with the old password racing a password change: never a working session', async (t) => {
  const outcomes = { refused: 0, revoked: 0 };
  for (let round = 1; round <= ROUNDS; round++) {
    const account = await register(app);
    const changer = await login(app, account);
    // The change hashes twice before it writes: the login starts later, so either may lock first.
    const [loggedIn, changed] = await Promise.all([
      after(stagger(round), () => loginRequest(app, account.email, account.password)),
      app.inject({
        method: 'POST',
        url: '/auth/password',
        headers: bearer(changer.accessToken),
        payload: { currentPassword: account.password, newPassword: `a new passphrase for round ${round}` },
      }),
    ]);
    t.equal(changed.statusCode, 204, `round ${round}: the change succeeded`);
    await assertRefusedOrRevoked(t, loggedIn, round, outcomes);
  }
  t.comment(`outcomes: ${JSON.stringify(outcomes)}`);
});

t.test('login racing the deletion of its user: 200 with a revoked token, or 401; never 5xx', async (t) => {
  const outcomes = { refused: 0, revoked: 0 };
  for (let round = 1; round <= ROUNDS; round++) {
    const account = await register(app);
    const [loggedIn, deleted] = await Promise.all([
      loginRequest(app, account.email, account.password),
      after(stagger(round), () => deleteUser(app, actor.accessToken, account.id)),
    ]);
    t.equal(deleted.statusCode, 204, `round ${round}: the deletion succeeded`);
    await assertRefusedOrRevoked(t, loggedIn, round, outcomes);
  }
  t.comment(`outcomes: ${JSON.stringify(outcomes)}`);
});
