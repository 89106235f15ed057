// The account page: register, log in, profile, sessions, password and email change, email verification, forgotten
// password, logout, over client/auth-client.js (the public mail routes through /account.js); two-step verification
// in /mfa.js.
import { describe, LINK_SENT, postJson } from '/account.js';
import { AuthError, createAuthClient } from '/client/auth-client.js';
import { authBaseUrl } from '/config.js';
import { setupMfa } from '/mfa.js';
import { setupPasskeys } from '/passkeys.js';

const $ = (selector) => document.querySelector(selector);
const status = $('#status');

function say(message, isError = false) {
  status.textContent = message;
  status.classList.toggle('error', isError);
}

// 401s that no refresh cures: the session was ended elsewhere (logout-all, password reset, deletion).
const SESSION_OVER = new Set(['TOKEN_REVOKED', 'REFRESH_TOKEN_INVALID', 'REFRESH_TOKEN_REUSED']);

const client = createAuthClient({ baseUrl: authBaseUrl, onChange: render });

// Two-step verification (web/mfa.js): the login's second step and the account section.
const mfa = setupMfa({ client, say, run, onLoggedIn: loggedIn });

let wasSignedIn = false;

function render(state) {
  // Logged out here, in another tab, or by the end of the session.
  if (wasSignedIn && !state) say('You are signed out.');
  wasSignedIn = !!state;
  $('#signed-in').hidden = !state;
  $('#signed-out').hidden = !!state;
  document.body.dataset.session = state ? 'signed-in' : 'signed-out';
  mfa.render(state);
  if (!state) return;
  showUser(state.user);
  $('#profile-expiry').textContent = new Date(state.expiresAt).toLocaleTimeString();
}

function showUser(user) {
  $('#profile-name').textContent = user.name ?? '';
  $('#profile-email').textContent = user.email;
  $('#profile-roles').textContent = user.roles.join(', ');
  const verified = user.emailVerified === true;
  $('#profile-verified').textContent = verified ? 'Yes' : 'No: open the link we mailed you';
  $('#profile-verified').dataset.verified = String(verified);
  $('#resend-verification').hidden = verified;
  mfa.showUser(user);
}

async function loadProfile() {
  showUser(await client.me());
}

async function loadSessions() {
  const { items } = await client.listSessions();
  const rows = items.map((session) => {
    const row = document.createElement('tr');
    row.dataset.sessionId = session.id;
    for (const value of [
      new Date(session.createdAt).toLocaleString(),
      new Date(session.lastUsedAt).toLocaleString(),
      session.userAgent ?? '',
      session.ip ?? '',
    ]) {
      const cell = document.createElement('td');
      cell.textContent = value;
      row.append(cell);
    }
    const action = document.createElement('td');
    if (session.current) {
      action.textContent = 'this session';
      row.classList.add('current');
    } else {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'revoke';
      button.textContent = 'Revoke';
      button.addEventListener('click', () =>
        run(async () => {
          await client.revokeSession(session.id);
          await loadSessions();
          say('Session revoked.');
        }),
      );
      action.append(button);
    }
    row.append(action);
    return row;
  });
  $('#sessions').replaceChildren(...rows);
}

async function run(action) {
  try {
    await action();
  } catch (error) {
    if (error instanceof AuthError && error.status === 401 && SESSION_OVER.has(error.code) && client.state) {
      // Clears this browser's cookies and signs every tab out.
      await client.logout().catch(() => {});
      say('Your session has ended (signed out elsewhere, or the password was reset). Please log in again.', true);
      return;
    }
    say(describe(error), true);
  }
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

$('#register-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  run(async () => {
    const { email, password, name } = formValues(form);
    await client.register(name ? { email, password, name } : { email, password });
    form.reset();
    $('#login-form [name=email]').value = email;
    say('Registered. You can log in now.');
  });
});

$('#login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  run(async () => {
    const { email, password } = formValues(form);
    $('#login-resend').hidden = true;
    let result;
    try {
      result = await client.login({ email, password });
    } catch (error) {
      // EMAIL_VERIFICATION=required: the password was right, the address is not verified yet.
      if (error instanceof AuthError && error.code === 'EMAIL_NOT_VERIFIED') $('#login-resend').hidden = false;
      throw error;
    }
    if (result.mfaRequired) {
      // TOTP is on: no session yet; the second step (web/mfa.js) completes the login.
      mfa.startSecondStep(result);
      return;
    }
    form.reset();
    await loggedIn(result.user);
  });
});

/** After a login, one step or two. */
async function loggedIn(user) {
  say(`Logged in as ${user.email}.`);
  await loadSessions();
}

$('#password-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  run(async () => {
    const { currentPassword, newPassword } = formValues(form);
    await client.changePassword(currentPassword, newPassword);
    form.reset();
    say('Password changed. Your other sessions were signed out.');
    await loadSessions();
  });
});

$('#email-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  run(async () => {
    const { newEmail, currentPassword } = formValues(form);
    // Authenticated: the client sends the cookie and X-CSRF-Token (and refreshes once on an expired access token).
    await client.json('/auth/email', { method: 'POST', json: { newEmail: newEmail.trim(), currentPassword } });
    form.reset();
    say(`Check your new address (${newEmail.trim()}) for a confirmation link. Your email changes when you open it.`);
  });
});

$('#forgot-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  run(async () => {
    const { email } = formValues(form);
    await postJson('/auth/password-reset/request', { email: email.trim() });
    form.reset();
    // The same answer whether the account exists or not.
    say(LINK_SENT);
  });
});

/** Asks for a new verification link; the answer never tells whether the address has an account. */
async function resendVerification(email) {
  await postJson('/auth/verify-email/request', { email });
  say(`If ${email} still needs verifying, we sent a new link. It may take a minute to arrive.`);
}

$('#resend-verification').addEventListener('click', () =>
  run(async () => {
    if (client.user) await resendVerification(client.user.email);
  }),
);
$('#login-resend').addEventListener('click', () =>
  run(async () => {
    const email = $('#login-form [name=email]').value.trim();
    if (!email) {
      say('Enter your email address above first.', true);
      return;
    }
    await resendVerification(email);
    $('#login-resend').hidden = true;
  }),
);

$('#reload-profile').addEventListener('click', () =>
  run(async () => {
    await loadProfile();
    say('Profile loaded.');
  }),
);
$('#reload-sessions').addEventListener('click', () => run(loadSessions));
$('#logout').addEventListener('click', () =>
  run(async () => {
    await client.logout();
  }),
);

// --- Passkeys (web/passkeys.js): the list and "Add a passkey" when signed in, "Sign in with a passkey" when not.
setupPasskeys({ client, run, say, onSignedIn: loadSessions });

run(async () => {
  try {
    const user = await client.start();
    if (user) await loadSessions();
  } finally {
    render(client.state);
    document.body.dataset.ready = 'true';
  }
});
