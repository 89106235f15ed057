// Real Chromium and a real SMTP server: the account mails (verification, password reset, email change) and the pages
// their links open, same origin (APP_URL is the address the browser uses), under the page CSP.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { freePort } from '../helpers/server-process.js';
import { STRONG_PASSWORD, uniqueEmail } from '../helpers/session-flow.js';
import { type ReceivedMail, startSmtpSink } from '../helpers/smtp.js';
import { ARTIFACTS, launchChromium, watchContextProblems } from './flow.js';

const NEW_PASSWORD = 'purple elephant riding a unicycle';
const LINK_SENT = 'If an account exists for that address, we sent a link. It may take a minute to arrive.';
const INVALID_LINK = /This link is invalid, expired or already used/;
const WAIT = { timeout: 10_000 };

const status = (page: Page, text: RegExp | string) => page.locator('#status', { hasText: text }).waitFor(WAIT);
const ready = (page: Page) => page.waitForSelector('body[data-ready="true"]', WAIT);
const session = (page: Page, state: 'signed-in' | 'signed-out') =>
  page.waitForSelector(`body[data-session="${state}"]`, WAIT);
async function screenshot(page: Page, step: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `account-mail-${step}.png`), fullPage: true });
}
const clearStatus = (page: Page) =>
  page.locator('#status').evaluate((element) => {
    (element as unknown as { textContent: string }).textContent = '';
  });

t.test('account mails and the pages their links open, in Chromium', async (t) => {
  const smtp = await startSmtpSink(t);
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const { app } = await buildTestApp(t, {
    env: { SMTP_URL: smtp.url, MAIL_FROM: 'accounts@example.com', APP_URL: origin, EMAIL_VERIFICATION: 'optional' },
  });
  await app.listen({ port, host: '127.0.0.1' });

  /** The newest mail to `address` whose link opens `page`, once `count` mails reached that address. */
  const mailTo = async (address: string, count: number, page: string): Promise<ReceivedMail & { link: string }> => {
    const mails = await smtp.waitFor(address, count);
    const mail = mails.findLast((candidate) => candidate.links[0]?.startsWith(`${origin}/${page}?token=`));
    if (!mail?.token || mail.links.length !== 1) throw new Error(`no ${page} mail to ${address}`);
    return { ...mail, link: mail.links[0]! };
  };
  const opened = async (page: Page, link: string, path: string) => {
    const response = await page.goto(link);
    t.match(response?.headers()['content-security-policy'], /script-src 'self'/, `${path}: the page CSP`);
    await ready(page);
    t.equal(page.url(), `${origin}${path}`, `${path}: the token is gone from the address bar`);
  };

  const browser = await launchChromium(t);
  const context = await browser.newContext({ viewport: { width: 1000, height: 1200 } });
  t.teardown(() => context.close());
  const problems: string[] = [];
  // 400 (an invalid link, a weak password), 401 (a wrong password, an ended session), 409 (a taken address): provoked.
  await watchContextProblems(context, problems, /^(400|401|409)$/);
  const page = await context.newPage();

  // Register and log in through the forms: the address is not verified yet.
  let email = uniqueEmail('mail');
  await page.goto(`${origin}/`);
  await ready(page);
  await page.fill('#register-form [name=email]', email);
  await page.fill('#register-form [name=password]', STRONG_PASSWORD);
  await page.click('#register-form button[type=submit]');
  await status(page, /Registered/);
  const registration = await mailTo(email, 1, 'verify-email');
  t.equal(registration.subject, 'Verify your email address', 'registration mailed a verification link');
  await page.fill('#login-form [name=password]', STRONG_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await session(page, 'signed-in');
  t.equal(await page.getAttribute('#profile-verified', 'data-verified'), 'false', 'the profile: not verified');
  await page.click('#resend-verification');
  await status(page, /we sent a new link/);
  const resent = await mailTo(email, 2, 'verify-email');
  t.not(resent.token, registration.token, '"Send verification link again" mailed a new link');

  // The registration link verifies the address; opened again, it is spent.
  await opened(page, registration.link, '/verify-email');
  await status(page, `Your email address is verified: ${email}.`);
  t.equal(await page.getAttribute('body', 'data-state'), 'ok', 'verified');
  await opened(page, registration.link, '/verify-email');
  await status(page, INVALID_LINK);
  t.ok(await page.isVisible('#request-form'), 'a spent link offers to send a new one');
  await page.fill('#request-form [name=email]', email);
  await page.click('#request-form button[type=submit]');
  await status(page, LINK_SENT);
  await page.goto(`${origin}/`);
  await session(page, 'signed-in');
  await page.waitForSelector('#profile-verified[data-verified="true"]', WAIT);
  t.ok(await page.isHidden('#resend-verification'), 'the profile shows the address verified, no resend button');
  await screenshot(page, '1-verified-profile');

  // Email change: first to an address someone registers before the link is opened, then to a free one.
  const taken = uniqueEmail('taken');
  await page.fill('#email-form [name=newEmail]', taken);
  await page.fill('#email-form [name=currentPassword]', STRONG_PASSWORD);
  await page.click('#email-form button[type=submit]');
  await status(page, /Check your new address/);
  const toTaken = await mailTo(taken, 1, 'confirm-email');
  const squatter = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email: taken, password: STRONG_PASSWORD },
  });
  t.equal(squatter.statusCode, 201, 'someone else registers that address meanwhile');
  await opened(page, toTaken.link, '/confirm-email');
  await status(page, 'That address was registered by someone else meanwhile.');

  const newEmail = uniqueEmail('moved');
  await page.goto(`${origin}/`);
  await session(page, 'signed-in');
  await page.fill('#email-form [name=newEmail]', newEmail);
  await page.fill('#email-form [name=currentPassword]', 'not my password at all');
  await page.click('#email-form button[type=submit]');
  await status(page, /Invalid email or password/);
  await page.fill('#email-form [name=currentPassword]', STRONG_PASSWORD);
  await page.click('#email-form button[type=submit]');
  await status(page, /Check your new address/);
  const confirmation = await mailTo(newEmail, 1, 'confirm-email');
  const notices = (await smtp.waitFor(email, 4)).filter((mail) => mail.links.length === 0);
  t.equal(notices.length, 2, 'the old address got a notice without a link for each request');
  await opened(page, confirmation.link, '/confirm-email');
  await status(page, `Your email address is now ${newEmail}.`);
  await page.goto(`${origin}/`);
  await session(page, 'signed-in');
  t.equal(await page.textContent('#profile-email'), newEmail, 'the profile shows the new address');
  email = newEmail;

  // Forgotten password, asked from the signed-out page; another device holds a session meanwhile.
  const other = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: STRONG_PASSWORD } });
  t.equal(other.statusCode, 200, 'a session on another device');
  const laptopContext = await browser.newContext();
  t.teardown(() => laptopContext.close());
  await watchContextProblems(laptopContext, problems, /^(400|401|409)$/);
  const laptop = await laptopContext.newPage();
  await laptop.goto(`${origin}/`);
  await ready(laptop);
  await laptop.fill('#login-form [name=email]', email);
  await laptop.fill('#login-form [name=password]', STRONG_PASSWORD);
  await laptop.click('#login-form button[type=submit]');
  await session(laptop, 'signed-in');
  await page.click('#logout');
  await session(page, 'signed-out');
  const answers: string[] = [];
  for (const address of [uniqueEmail('nobody'), email]) {
    await clearStatus(page);
    await page.fill('#forgot-form [name=email]', address);
    await page.click('#forgot-form button[type=submit]');
    await status(page, LINK_SENT);
    answers.push((await page.textContent('#status')) ?? '');
  }
  await screenshot(page, '2-forgot');
  t.equal(answers[0], answers[1], '"Forgot your password?" answers the same for an unknown address');
  const reset = await mailTo(email, 2, 'reset-password');
  t.equal(reset.subject, 'Reset your password', 'the reset mail arrived');

  await opened(page, reset.link, '/reset-password');
  await page.fill('#reset-form [name=newPassword]', NEW_PASSWORD);
  await page.fill('#reset-form [name=confirmPassword]', `${NEW_PASSWORD}!`);
  await page.click('#reset-form button[type=submit]');
  await status(page, /The two passwords differ/);
  await page.fill('#reset-form [name=newPassword]', 'password');
  await page.fill('#reset-form [name=confirmPassword]', 'password');
  await page.click('#reset-form button[type=submit]');
  await status(page, /That password is too weak: Password is too common/);
  t.ok(await page.isVisible('#reset-form'), 'a weak password keeps the form (the link still works)');
  await screenshot(page, '3-reset-weak');
  await page.fill('#reset-form [name=newPassword]', NEW_PASSWORD);
  await page.fill('#reset-form [name=confirmPassword]', NEW_PASSWORD);
  await page.click('#reset-form button[type=submit]');
  await status(page, 'Password changed.');
  t.match(
    await page.textContent('#reset-done'),
    /password was changed and every session of your account was signed out/,
    'the page says the password changed and every session was signed out',
  );
  t.ok(await page.isHidden('#reset-form'), 'the form is gone');
  await screenshot(page, '4-reset-done');
  const otherRefresh = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    payload: { refreshToken: other.json().refreshToken },
  });
  t.equal(otherRefresh.statusCode, 401, "the other device's session ended");
  await laptop.click('#reload-profile');
  await session(laptop, 'signed-out');
  await status(laptop, /Your session has ended/);

  // Log in again from the page's link: the old password fails, the new one works.
  await page.click('#login-link');
  await ready(page);
  await session(page, 'signed-out');
  await page.fill('#login-form [name=email]', email);
  await page.fill('#login-form [name=password]', STRONG_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await status(page, /Invalid email or password/);
  t.equal(await page.getAttribute('body', 'data-session'), 'signed-out', 'the old password fails');
  await page.fill('#login-form [name=password]', NEW_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await session(page, 'signed-in');
  t.equal(await page.textContent('#profile-email'), email, 'the new password logs in');

  // The reset link works once (the page learns it is spent when it submits: no route peeks at a token).
  await opened(page, reset.link, '/reset-password');
  await page.fill('#reset-form [name=newPassword]', `${NEW_PASSWORD} again`);
  await page.fill('#reset-form [name=confirmPassword]', `${NEW_PASSWORD} again`);
  await page.click('#reset-form button[type=submit]');
  await status(page, INVALID_LINK);
  t.ok(await page.isHidden('#reset-form'), 'a spent reset link shows no form');
  t.ok(await page.isVisible('#request-form'), 'it offers to send a new link');
  await screenshot(page, '5-reset-spent');

  t.same(problems, [], 'no page errors, no CSP violations');
});
