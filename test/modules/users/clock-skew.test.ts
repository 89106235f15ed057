// Clocks of several instances cannot resurrect stale roles: two app instances on the same database and Redis, one
// clock a minute ahead of the other (CLOCK_TOLERANCE=120, so the skew alone invalidates nothing). A role change or a
// logout-all made on either instance rejects every token minted before it, on both, and accepts every token minted
// after it, on both.
import t, { type Test } from 'tap';
import { createAdmin, putRoles } from '../../helpers/admin.js';
import { buildTestApp, makeKeysDir } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  type Account,
  assertError,
  bearer,
  type LoggedIn,
  login,
  me,
  refresh,
  register,
} from '../../helpers/session-flow.js';

const NOW = Date.now();
const slowClock = new TestClock(NOW);
const fastClock = new TestClock(NOW + 60_000);
const keysDir = await makeKeysDir(t);
const env = { CLOCK_TOLERANCE: '120' };
const slow = await buildTestApp(t, { clock: slowClock, keysDir, env });
const fast = await buildTestApp(t, {
  clock: fastClock,
  keysDir,
  env,
  databaseUrl: slow.databaseUrl,
  redisKeyPrefix: slow.redisKey(''),
});
const instances = [
  ['slow', slow.app],
  ['fast', fast.app],
] as const;

const adminAccount = await createAdmin(slow.app);
const admin = await login(slow.app, adminAccount);
const adminOnFast = await login(fast.app, adminAccount);

async function assertAcceptedEverywhere(t: Test, token: string, label: string) {
  for (const [name, app] of instances) t.equal((await me(app, token)).statusCode, 200, `${label}: accepted on ${name}`);
}

async function assertRevokedEverywhere(t: Test, token: string, label: string) {
  for (const [name, app] of instances)
    assertError(t, await me(app, token), 401, 'TOKEN_REVOKED', `${label} on ${name}`);
}

t.test('a role change on the slow instance rejects tokens the fast one minted before it', async (t) => {
  const account: Account = await register(slow.app);
  const before: LoggedIn = await login(fast.app, account);
  await assertAcceptedEverywhere(t, before.accessToken, 'before the change');
  const refreshedBefore = (await refresh(fast.app, before.refreshToken)).json().accessToken as string;

  const changed = await putRoles(slow.app, admin.accessToken, account.id, { roles: ['user', 'admin'] });
  t.equal(changed.statusCode, 200, 'promoted on the slow instance');

  await assertRevokedEverywhere(t, before.accessToken, 'minted on fast before the change');
  await assertRevokedEverywhere(t, refreshedBefore, 'refreshed on fast before the change');

  const afterOnFast = await login(fast.app, account);
  const afterOnSlow = await login(slow.app, account);
  await assertAcceptedEverywhere(t, afterOnFast.accessToken, 'minted on fast after the change');
  await assertAcceptedEverywhere(t, afterOnSlow.accessToken, 'minted on slow after the change');
  const refreshed = await refresh(slow.app, before.refreshToken);
  t.equal(refreshed.statusCode, 200, 'the old session refreshes, with the new roles');
  await assertAcceptedEverywhere(t, refreshed.json().accessToken, 'refreshed on slow after the change');
});

t.test('a role change on the fast instance accepts tokens the slow one mints after it', async (t) => {
  const account: Account = await register(slow.app);
  const before: LoggedIn = await login(slow.app, account);
  const changed = await putRoles(fast.app, adminOnFast.accessToken, account.id, { roles: ['user', 'admin'] });
  t.equal(changed.statusCode, 200, 'promoted on the fast instance');
  await assertRevokedEverywhere(t, before.accessToken, 'minted on slow before the change');

  const afterOnSlow = await login(slow.app, account);
  await assertAcceptedEverywhere(t, afterOnSlow.accessToken, 'minted on slow after the change');
  const refreshed = await refresh(slow.app, before.refreshToken);
  t.equal(refreshed.statusCode, 200, 'refresh on slow after the change');
  await assertAcceptedEverywhere(t, refreshed.json().accessToken, 'refreshed on slow after the change');
});

t.test('logout-all on either instance: older tokens rejected, newer ones accepted, on both', async (t) => {
  const account: Account = await register(slow.app);
  const onFast = await login(fast.app, account);
  const onSlow = await login(slow.app, account);
  t.equal(
    (await slow.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(onSlow.accessToken) }))
      .statusCode,
    204,
    'logout-all on the slow instance',
  );
  await assertRevokedEverywhere(t, onFast.accessToken, 'minted on fast before logout-all on slow');
  await assertRevokedEverywhere(t, onSlow.accessToken, 'minted on slow before logout-all on slow');
  const nextOnFast = await login(fast.app, account);
  const nextOnSlow = await login(slow.app, account);
  await assertAcceptedEverywhere(t, nextOnFast.accessToken, 'minted on fast after');
  await assertAcceptedEverywhere(t, nextOnSlow.accessToken, 'minted on slow after');

  t.equal(
    (await fast.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(nextOnFast.accessToken) }))
      .statusCode,
    204,
    'logout-all on the fast instance',
  );
  await assertRevokedEverywhere(t, nextOnSlow.accessToken, 'minted on slow before logout-all on fast');
  const lastOnSlow = await login(slow.app, account);
  const lastOnFast = await login(fast.app, account);
  await assertAcceptedEverywhere(t, lastOnSlow.accessToken, 'minted on slow after logout-all on fast');
  await assertAcceptedEverywhere(t, lastOnFast.accessToken, 'minted on fast after logout-all on fast');
});
