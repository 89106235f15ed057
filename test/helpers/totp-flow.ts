// TOTP flows for tests: enrol an account through the real routes, compute its codes at the test clock's time, and
// run the login's two steps.
import type { App } from '../../src/app.js';
import { totpCode, totpStep } from '../../src/modules/mfa/totp.js';
import type { TestClock } from './clock.js';
import { type Account, bearer, type Headers, loginRequest, type Response } from './session-flow.js';

const STEP_MS = 30_000;

/** A clock one second into a 30-second step, so `nextStep` always lands on a fresh step at the same offset. */
export const stepAlignedClock = (TestClockClass: typeof TestClock) =>
  new TestClockClass(Math.floor(Date.now() / STEP_MS) * STEP_MS + 1000);

/** The code of the clock's current step. */
export const codeNow = (secret: string, clock: TestClock, offsetSteps = 0) =>
  totpCode(secret, totpStep(clock.now()) + offsetSteps);

/** Moves the clock to the next 30-second step (a code of it was never used). */
export const nextStep = (clock: TestClock) => clock.advance(STEP_MS);

/** A 6-digit string that is not a code of `secret` for any step within two of now. */
export function wrongCodeNow(secret: string, clock: TestClock): string {
  const near = new Set([-2, -1, 0, 1, 2].map((offset) => codeNow(secret, clock, offset)));
  for (let candidate = 0; ; candidate++) {
    const code = String(candidate).padStart(6, '0');
    if (!near.has(code)) return code;
  }
}

export function setupTotp(app: App, accessToken: string, currentPassword: string, headers: Headers = {}) {
  return app.inject({
    method: 'POST',
    url: '/auth/mfa/totp/setup',
    headers: { ...bearer(accessToken), ...headers },
    payload: { currentPassword },
  });
}

export function enableTotp(app: App, accessToken: string, code: string) {
  return app.inject({
    method: 'POST',
    url: '/auth/mfa/totp/enable',
    headers: bearer(accessToken),
    payload: { code },
  });
}

export function disableTotp(app: App, accessToken: string, payload: { currentPassword: string; code: string }) {
  return app.inject({ method: 'POST', url: '/auth/mfa/totp/disable', headers: bearer(accessToken), payload });
}

export function regenerateRecoveryCodes(
  app: App,
  accessToken: string,
  payload: { currentPassword: string; code: string },
) {
  return app.inject({ method: 'POST', url: '/auth/mfa/recovery-codes', headers: bearer(accessToken), payload });
}

export interface Enrolled {
  secret: string;
  recoveryCodes: string[];
}

/**
 * Sets up and enables TOTP for the account behind `accessToken` with the code of the clock's step, then moves the
 * clock to the next step (the enabling code counts as used).
 */
export async function enrolTotp(app: App, clock: TestClock, accessToken: string, password: string): Promise<Enrolled> {
  const setup = await setupTotp(app, accessToken, password);
  if (setup.statusCode !== 200) throw new Error(`setup failed: ${setup.statusCode} ${setup.body}`);
  const { secret } = setup.json();
  const enabled = await enableTotp(app, accessToken, codeNow(secret, clock));
  if (enabled.statusCode !== 200) throw new Error(`enable failed: ${enabled.statusCode} ${enabled.body}`);
  nextStep(clock);
  return { secret, recoveryCodes: enabled.json().recoveryCodes };
}

/** The login's first step for an account with TOTP: its mfaToken. */
export async function startMfaLogin(
  app: App,
  account: Account,
  options: { transport?: 'body' | 'cookie'; remoteAddress?: string } = {},
): Promise<string> {
  const response = options.remoteAddress
    ? await app.inject({
        method: 'POST',
        url: '/auth/login',
        payload: { email: account.email, password: account.password },
        remoteAddress: options.remoteAddress,
      })
    : await loginRequest(app, account.email, account.password, { transport: options.transport });
  const body = response.json();
  if (response.statusCode !== 200 || body.mfaRequired !== true) {
    throw new Error(`login did not ask for a second step: ${response.statusCode} ${response.body}`);
  }
  return body.mfaToken;
}

export function verifyMfa(
  app: App,
  payload: { mfaToken: string; code?: string; recoveryCode?: string; transport?: 'body' | 'cookie' },
  remoteAddress?: string,
): Promise<Response> {
  return app.inject({
    method: 'POST',
    url: '/auth/mfa/verify',
    payload,
    ...(remoteAddress ? { remoteAddress } : {}),
  });
}
