// Shared by the account page and the pages the mails link to: calls to the public account routes, the token of a
// mailed link, and the messages shown for the service's error codes.
import { AuthError } from '/client/auth-client.js';
import { authBaseUrl } from '/config.js';

/** The auth service, resolved as the client does: empty means the origin that serves this page. */
export const serviceUrl = new URL(authBaseUrl || '/', location.href).href.replace(/\/+$/, '');

/** POSTs a JSON body to a public route; resolves to the JSON answer (undefined for 204), throws AuthError otherwise. */
export async function postJson(path, body) {
  const response = await fetch(`${serviceUrl}${path}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = response.status === 204 ? undefined : await response.json().catch(() => undefined);
  if (!response.ok) throw new AuthError(response.status, data?.code, data?.message, data);
  return data;
}

/**
 * The `token` of the link this page was opened with, taken out of the address bar at once (so it stays out of the
 * history, bookmarks and screenshots); a reload then finds no token.
 */
export function takeToken() {
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  if (params.has('token')) {
    params.delete('token');
    const rest = params.toString();
    history.replaceState(history.state, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
  }
  return token || null;
}

export const INVALID_LINK = 'This link is invalid, expired or already used.';
/** What every request for a mailed link answers, whether the account exists or not. */
export const LINK_SENT = 'If an account exists for that address, we sent a link. It may take a minute to arrive.';

const MESSAGES = {
  ACTION_TOKEN_INVALID: INVALID_LINK,
  EMAIL_TAKEN: 'That address was registered by someone else meanwhile.',
  EMAIL_NOT_VERIFIED: 'Verify your email address before logging in: open the link we mailed you.',
  RATE_LIMITED: 'Too many requests. Please wait a while and try again.',
  SERVICE_UNAVAILABLE: 'The service is unavailable right now. Please try again shortly.',
};

/** A sentence for an error: ours for the codes above, the service's message (and code) for the others. */
export function describe(error) {
  if (!(error instanceof AuthError)) {
    return error instanceof TypeError ? 'The service could not be reached. Please try again.' : String(error);
  }
  if (error.code === 'PASSWORD_TOO_WEAK') return `That password is too weak: ${error.message}.`;
  return MESSAGES[error.code] ?? `${error.message} (${error.code ?? error.status})`;
}

/** Writes a message to the page's status line; `state` also lands on <body data-state> for tests and styles. */
export function say(message, state = 'ok') {
  const status = document.querySelector('#status');
  status.textContent = message;
  status.classList.toggle('error', state === 'error');
  document.body.dataset.state = state;
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** Disables a form's buttons while `action` runs, so a double click sends one request. */
export async function whileBusy(form, action) {
  const buttons = [...form.querySelectorAll('button')];
  for (const button of buttons) button.disabled = true;
  try {
    return await action();
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

/** Wires a form asking for a new link (verification or reset) by email: always the same answer. */
export function linkRequestForm(form, path) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const { email } = formValues(form);
    whileBusy(form, async () => {
      try {
        await postJson(path, { email: email.trim() });
        form.reset();
        say(LINK_SENT);
      } catch (error) {
        say(describe(error), 'error');
      }
    });
  });
}
