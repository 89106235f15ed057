// The account page: register, log in, profile, sessions, password change, logout, over client/auth-client.js.
import { AuthError, createAuthClient } from '/client/auth-client.js';
import { authBaseUrl } from '/config.js';

const $ = (selector) => document.querySelector(selector);
const status = $('#status');

function say(message, isError = false) {
  status.textContent = message;
  status.classList.toggle('error', isError);
}

function describe(error) {
  return error instanceof AuthError ? `${error.message} (${error.code ?? error.status})` : String(error);
}

const client = createAuthClient({ baseUrl: authBaseUrl, onChange: render });

let wasSignedIn = false;

function render(state) {
  // Logged out here, in another tab, or by the end of the session.
  if (wasSignedIn && !state) say('You are signed out.');
  wasSignedIn = !!state;
  $('#signed-in').hidden = !state;
  $('#signed-out').hidden = !!state;
  document.body.dataset.session = state ? 'signed-in' : 'signed-out';
  if (!state) return;
  $('#profile-name').textContent = state.user.name ?? '';
  $('#profile-email').textContent = state.user.email;
  $('#profile-roles').textContent = state.user.roles.join(', ');
  $('#profile-expiry').textContent = new Date(state.expiresAt).toLocaleTimeString();
}

async function loadProfile() {
  const user = await client.me();
  $('#profile-name').textContent = user.name ?? '';
  $('#profile-email').textContent = user.email;
  $('#profile-roles').textContent = user.roles.join(', ');
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
    const result = await client.login({ email, password });
    if (result.mfaRequired) {
      say('This account needs a second factor, which this page does not support yet.', true);
      return;
    }
    form.reset();
    say(`Logged in as ${result.user.email}.`);
    await loadSessions();
  });
});

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

run(async () => {
  try {
    const user = await client.start();
    if (user) await loadSessions();
  } finally {
    render(client.state);
    document.body.dataset.ready = 'true';
  }
});
