// Passkeys on the account page: the list with "Remove" and "Add a passkey" (signed in), and "Sign in with a
// passkey" (signed out), over @simplewebauthn/browser (served from node_modules at /vendor/) and the passkey routes.
import '/vendor/simplewebauthn-browser.js';
import { postJson } from '/account.js';
import { AuthError } from '/client/auth-client.js';

// The bundle is a UMD file: evaluated as a module, it defines this global.
const { startRegistration, startAuthentication, browserSupportsWebAuthn } = globalThis.SimpleWebAuthnBrowser;

const $ = (selector) => document.querySelector(selector);

/** Turns the prompt's and the service's refusals into sentences; anything else goes to the page's handler. */
function explain(error) {
  // The user closed the prompt, it timed out, or no authenticator offered a passkey for this site.
  if (error?.name === 'NotAllowedError' || error?.code === 'ERROR_CEREMONY_ABORTED') {
    return 'The passkey prompt was closed or timed out. Nothing changed.';
  }
  if (error?.name === 'InvalidStateError' || error?.code === 'ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED') {
    return 'This device already holds a passkey for your account.';
  }
  if (error instanceof AuthError && error.code === 'PASSKEY_INVALID') {
    return 'That passkey was not accepted (removed, or not for this site). Try another one, or log in with your password.';
  }
  return undefined;
}

/**
 * Wires the passkey parts of the page. `run` and `say` are the page's error handler and status line; `onSignedIn`
 * runs after a passkey sign-in, once the client holds the session.
 */
export function setupPasskeys({ client, run, say, onSignedIn }) {
  const supported = browserSupportsWebAuthn();
  $('#passkey-login').hidden = !supported;
  $('#passkeys-card').hidden = !supported;
  if (!supported) return;

  const attempt = (action) =>
    run(async () => {
      try {
        await action();
      } catch (error) {
        const sentence = explain(error);
        if (!sentence) throw error;
        say(sentence, true);
      }
    });

  async function loadPasskeys() {
    const { items } = await client.json('/auth/passkeys?limit=100');
    const rows = items.map((passkey) => {
      const row = document.createElement('tr');
      row.dataset.passkeyId = passkey.id;
      for (const value of [
        passkey.name ?? 'Passkey',
        new Date(passkey.createdAt).toLocaleString(),
        passkey.lastUsedAt ? new Date(passkey.lastUsedAt).toLocaleString() : 'never',
      ]) {
        const cell = document.createElement('td');
        cell.textContent = value;
        row.append(cell);
      }
      const action = document.createElement('td');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'remove-passkey';
      button.textContent = 'Remove';
      button.addEventListener('click', () =>
        attempt(async () => {
          await client.json(`/auth/passkeys/${encodeURIComponent(passkey.id)}`, { method: 'DELETE' });
          await loadPasskeys();
          say('Passkey removed. It signs in no more.');
        }),
      );
      action.append(button);
      row.append(action);
      return row;
    });
    $('#passkeys').replaceChildren(...rows);
    $('#passkeys-empty').hidden = rows.length > 0;
    document.body.dataset.passkeys = String(rows.length);
  }

  $('#passkey-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    attempt(async () => {
      const optionsJSON = await client.json('/auth/passkeys/register/options', { method: 'POST', json: {} });
      const response = await startRegistration({ optionsJSON });
      const name = new FormData(form).get('name')?.trim();
      await client.json('/auth/passkeys/register', { method: 'POST', json: name ? { response, name } : { response } });
      form.reset();
      await loadPasskeys();
      say('Passkey added. You can sign in with it instead of your password.');
    });
  });

  $('#passkey-login').addEventListener('click', () =>
    attempt(async () => {
      const { challengeId, options } = await postJson('/auth/passkeys/login/options', {});
      const response = await startAuthentication({ optionsJSON: options });
      // The client holds the new session as after a password login (also for a frontend on another host).
      const body = await client.loginWithPasskey({ challengeId, response });
      say(`Signed in with a passkey as ${body.user.email}.`);
      await onSignedIn?.();
    }),
  );

  // The list follows the session: loaded when someone signs in (here, in another tab, or at start).
  let shownFor = null;
  client.subscribe((state) => {
    const userId = state?.user.id ?? null;
    if (userId === shownFor) return;
    shownFor = userId;
    if (userId) run(loadPasskeys);
    else $('#passkeys').replaceChildren();
  });
  $('#reload-passkeys').addEventListener('click', () => run(loadPasskeys));
}
