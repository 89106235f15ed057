// An email-change confirmation racing a registration of the same address, on real Postgres: whichever commits first
// wins, the other gets 409 EMAIL_TAKEN (never a 500), and exactly one user holds the address afterwards. The
// confirmation's delay after the registration starts follows a staircase (later after a confirmation win, sooner
// after a registration win, in steps that shrink at each flip and grow along a streak), so the rounds gather where
// the two commits overlap and both orders happen.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { users } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import { bearer, codeOf, login, me, register, uniqueEmail } from '../../helpers/session-flow.js';
import { startSmtpSink } from '../../helpers/smtp.js';

const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
const smtp = await startSmtpSink(t);
// No verification mail: the registrations race, their mail would only slow the rounds.
const { app } = await buildTestApp(t, { clock, env: { SMTP_URL: smtp.url, EMAIL_VERIFICATION: 'off' } });

const ROUNDS = 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('confirmation vs registration of the same address: one wins, the other 409, one holder', async (t) => {
  const changer = await register(app);
  const session = await login(app, changer);
  let currentEmail = changer.email;
  const outcomes = { confirmation: 0, registration: 0 };
  let delayMs = 0;
  let stepMs = 8;
  let lastWinner: 'confirmation' | 'registration' | undefined;

  for (let round = 0; round < ROUNDS; round++) {
    clock.advance(1000);
    const contested = uniqueEmail(`race${round}`);
    const asked = await app.inject({
      method: 'POST',
      url: '/auth/email',
      headers: bearer(session.accessToken),
      payload: { newEmail: contested, currentPassword: changer.password },
    });
    t.equal(asked.statusCode, 202, `round ${round}: change asked`);
    await app.accounts.settled();
    const [mail] = await smtp.waitFor(contested, 1);
    const token = mail?.token as string;

    const registration = app.inject({
      method: 'POST',
      url: '/auth/register',
      payload: { email: contested, password: 'the registrant passphrase' },
    });
    const confirmation = sleep(delayMs).then(() =>
      app.inject({ method: 'POST', url: '/auth/email/confirm', payload: { token } }),
    );
    const [registered, confirmed] = await Promise.all([registration, confirmation]);

    const label = `round ${round} (+${delayMs} ms): register ${registered.statusCode}, confirm ${confirmed.statusCode}`;
    t.ok(registered.statusCode < 500 && confirmed.statusCode < 500, `${label}: no 5xx`);
    const confirmationWon = confirmed.statusCode === 200;
    const registrationWon = registered.statusCode === 201;
    t.ok(confirmationWon !== registrationWon, `${label}: exactly one wins`);
    if (confirmationWon) {
      t.equal(registered.statusCode, 409, `${label}: the registration lost`);
      t.equal(codeOf(registered), 'EMAIL_TAKEN');
      t.equal(confirmed.json().user.email, contested);
    } else {
      t.equal(confirmed.statusCode, 409, `${label}: the confirmation lost`);
      t.equal(codeOf(confirmed), 'EMAIL_TAKEN');
    }

    const holders = await app.db
      .select({ id: users.id })
      .from(users)
      .where(sql`lower(${users.email}) = ${contested.toLowerCase()}`);
    t.equal(holders.length, 1, `${label}: exactly one user holds the address`);
    const expectedHolder = confirmationWon ? changer.id : registered.json().user.id;
    t.equal(holders[0]?.id, expectedHolder, `${label}: the winner holds it`);

    if (confirmationWon) currentEmail = contested;
    const profile = await me(app, session.accessToken);
    t.equal(profile.json().user.email, currentEmail, `${label}: the changer's email is what its outcome says`);
    const winner = confirmationWon ? 'confirmation' : 'registration';
    outcomes[winner]++;
    // Shrinks across the boundary, grows along a streak (a slow machine moves the boundary out).
    if (lastWinner !== undefined) stepMs = winner === lastWinner ? stepMs * 1.5 : Math.max(1, stepMs / 2);
    lastWinner = winner;
    delayMs = Math.max(0, Math.round(delayMs + (confirmationWon ? stepMs : -stepMs)));
  }
  t.comment(`wins: ${JSON.stringify(outcomes)}`);
  // The spread of delays makes both orders happen; if one never does, the race was not exercised.
  t.ok(outcomes.confirmation > 0, 'the confirmation won some rounds');
  t.ok(outcomes.registration > 0, 'the registration won some rounds');
});
