// Two-step verification on the account page: the login's second step (a code of the authenticator app, or a recovery
// code), and in the account section TOTP set-up (QR code drawn here by /qr.js, never by a remote service), turning it
// off, and new recovery codes. app.js wires it with setupMfa().
import { formValues, whileBusy } from '/account.js';
import { AuthError } from '/client/auth-client.js';
import { qrSvg } from '/qr.js';

export const WRONG_CODE = 'That code is wrong or was already used.';
export const LOG_IN_AGAIN = 'Please log in again.';
const WRONG_PASSWORD = 'That password is wrong.';

const $ = (selector) => document.querySelector(selector);
const isCode = (error, code) => error instanceof AuthError && error.code === code;
/** What the user types: spaces and dashes are for reading only in a TOTP code. */
const cleanCode = (value) => String(value ?? '').replace(/[\s-]/g, '');
/** The key in groups of four, as authenticator apps show it (they ignore the spaces). */
const grouped = (secret) => secret.replace(/(.{4})(?=.)/g, '$1 ');

/**
 * @param {{
 *   client: import('/client/auth-client.js').AuthClient,
 *   say: (message: string, isError?: boolean) => void,
 *   run: (action: () => Promise<void>) => Promise<void>,
 *   onLoggedIn: (user: import('/client/auth-client.js').User) => Promise<void>,
 * }} app
 */
export function setupMfa({ client, say, run, onLoggedIn }) {
  // ---- The login's second step -------------------------------------------------------------------------------------
  const loginForm = $('#login-form');
  const stepForm = $('#mfa-login-form');
  const codeInput = stepForm.querySelector('[name=code]');
  const recoveryInput = stepForm.querySelector('[name=recoveryCode]');
  /** The pending challenge: kept in memory only, never stored. */
  let mfaToken = null;
  let expiry;
  let useRecovery = false;
  document.body.dataset.loginStep = 'password';

  function chooseMethod(recovery) {
    useRecovery = recovery;
    $('#mfa-login-code').hidden = recovery;
    $('#mfa-login-recovery').hidden = !recovery;
    // A disabled field is neither validated nor submitted.
    codeInput.disabled = recovery;
    recoveryInput.disabled = !recovery;
    $('#mfa-login-switch').textContent = recovery ? 'Use a code from the app' : 'Use a recovery code';
    (recovery ? recoveryInput : codeInput).focus();
  }

  /** Back to the password step (after Cancel, an ended challenge, or a login elsewhere). */
  function endSecondStep() {
    clearTimeout(expiry);
    mfaToken = null;
    stepForm.reset();
    stepForm.hidden = true;
    loginForm.hidden = false;
    document.body.dataset.loginStep = 'password';
  }

  function logInAgain() {
    endSecondStep();
    loginForm.querySelector('[name=password]')?.focus();
    say(LOG_IN_AGAIN, true);
  }

  /** The password was right and the account has TOTP on: ask for the second factor. */
  function startSecondStep(challenge) {
    mfaToken = challenge.mfaToken;
    loginForm.querySelector('[name=password]').value = '';
    loginForm.hidden = true;
    stepForm.reset();
    stepForm.hidden = false;
    $('#mfa-login-switch').hidden = !challenge.methods?.includes('recovery_code');
    chooseMethod(false);
    document.body.dataset.loginStep = 'mfa';
    clearTimeout(expiry);
    expiry = setTimeout(logInAgain, (challenge.mfaExpiresIn ?? 300) * 1000);
    say('Enter the code from your authenticator app.');
  }

  stepForm.addEventListener('submit', (event) => {
    event.preventDefault();
    run(() =>
      whileBusy(stepForm, async () => {
        if (!mfaToken) return logInAgain();
        const { code, recoveryCode } = formValues(stepForm);
        const proof = useRecovery
          ? { mfaToken, recoveryCode: recoveryCode.trim() }
          : { mfaToken, code: cleanCode(code) };
        let result;
        try {
          result = await client.verifyMfa(proof);
        } catch (error) {
          if (isCode(error, 'MFA_CODE_INVALID')) {
            (useRecovery ? recoveryInput : codeInput).value = '';
            (useRecovery ? recoveryInput : codeInput).focus();
            say(WRONG_CODE, true);
            return;
          }
          // Expired, used up by five wrong codes, or unknown: the password step again.
          if (isCode(error, 'MFA_TOKEN_INVALID')) return logInAgain();
          throw error;
        }
        endSecondStep();
        loginForm.reset();
        await onLoggedIn(result.user);
      }),
    );
  });
  $('#mfa-login-switch').addEventListener('click', () => chooseMethod(!useRecovery));
  $('#mfa-login-cancel').addEventListener('click', () => {
    endSecondStep();
    say('');
  });

  // ---- The account section: set up, turn off, new recovery codes --------------------------------------------------
  const setupForm = $('#mfa-setup-form');
  const enableForm = $('#mfa-enable-form');
  const manageForm = $('#mfa-manage-form');
  const recoveryPanel = $('#mfa-recovery');

  /** Errors of these forms in their words; others go to app.js's run(). */
  async function guarded(form, action) {
    try {
      await whileBusy(form, action);
    } catch (error) {
      if (isCode(error, 'MFA_CODE_INVALID')) {
        const field = form.querySelector('[name=code]');
        field.value = '';
        field.focus();
        say(WRONG_CODE, true);
      } else if (isCode(error, 'INVALID_CREDENTIALS')) {
        say(WRONG_PASSWORD, true);
      } else {
        throw error;
      }
    }
  }

  function forgetSetup() {
    $('#mfa-qr').replaceChildren();
    $('#mfa-secret').textContent = '';
    enableForm.reset();
    enableForm.hidden = true;
  }

  function showRecoveryCodes(codes) {
    const items = codes.map((code) => {
      const item = document.createElement('li');
      const text = document.createElement('code');
      text.textContent = code;
      item.append(text);
      return item;
    });
    $('#mfa-recovery-codes').replaceChildren(...items);
    recoveryPanel.hidden = false;
  }

  function hideRecoveryCodes() {
    $('#mfa-recovery-codes').replaceChildren();
    recoveryPanel.hidden = true;
  }

  /** Shows the account's TOTP state (profile line and section). */
  function showUser(user) {
    const enabled = user.mfaEnabled === true;
    $('#profile-mfa').textContent = enabled ? 'On' : 'Off';
    $('#profile-mfa').dataset.enabled = String(enabled);
    $('#mfa-card').dataset.enabled = String(enabled);
    $('#mfa-state').textContent = enabled
      ? 'On: logging in asks for a code from your authenticator app after your password.'
      : 'Off: your password alone logs you in.';
    manageForm.hidden = !enabled;
    if (enabled) {
      forgetSetup();
      setupForm.hidden = true;
    } else {
      setupForm.hidden = !enableForm.hidden;
    }
  }

  setupForm.addEventListener('submit', (event) => {
    event.preventDefault();
    run(() =>
      guarded(setupForm, async () => {
        const { currentPassword } = formValues(setupForm);
        const { secret, otpauthUrl } = await client.setupTotp(currentPassword);
        setupForm.reset();
        setupForm.hidden = true;
        hideRecoveryCodes();
        $('#mfa-qr').replaceChildren(
          qrSvg(otpauthUrl, { errorCorrectionLevel: 'M', label: 'QR code of your authenticator key' }),
        );
        $('#mfa-secret').textContent = grouped(secret);
        enableForm.hidden = false;
        enableForm.querySelector('[name=code]').focus();
        say('Scan the QR code, then enter the code your app shows.');
      }),
    );
  });

  enableForm.addEventListener('submit', (event) => {
    event.preventDefault();
    run(() =>
      guarded(enableForm, async () => {
        const { code } = formValues(enableForm);
        // Updates the client's user, whose render turns the section to "on" and forgets the key.
        const { recoveryCodes } = await client.enableTotp(cleanCode(code));
        forgetSetup();
        showRecoveryCodes(recoveryCodes);
        say('Two-step verification is on. Store your recovery codes now: they are shown only once.');
      }),
    );
  });

  $('#mfa-setup-cancel').addEventListener('click', () => {
    forgetSetup();
    setupForm.hidden = false;
    say('');
  });

  manageForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const action = event.submitter?.value;
    run(() =>
      guarded(manageForm, async () => {
        const { currentPassword, code } = formValues(manageForm);
        if (action === 'disable') {
          await client.disableTotp(currentPassword, cleanCode(code));
          manageForm.reset();
          hideRecoveryCodes();
          say('Two-step verification is off; your recovery codes no longer work.');
        } else {
          const { recoveryCodes } = await client.regenerateRecoveryCodes(currentPassword, cleanCode(code));
          manageForm.reset();
          showRecoveryCodes(recoveryCodes);
          say('New recovery codes: the old ones no longer work. Store these now: they are shown only once.');
        }
      }),
    );
  });

  $('#mfa-recovery-done').addEventListener('click', hideRecoveryCodes);

  return {
    startSecondStep,
    showUser,
    /** Follows the client's state: a session ends any second step; no session forgets what the section showed. */
    render(state) {
      if (state) {
        if (mfaToken) endSecondStep();
        return;
      }
      forgetSetup();
      hideRecoveryCodes();
      setupForm.reset();
      manageForm.reset();
    },
  };
}
