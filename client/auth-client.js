// Browser client of the auth service, cookie transport: login (with its TOTP second step) and logout, X-CSRF-Token on
// refresh before the access token expires, one refresh and one retry after a 401, and one refresh for all open tabs
// (Web Locks serialise it, BroadcastChannel shares the outcome). Plain ES module, no dependencies.

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
// 401 codes a refresh can cure; INVALID_CREDENTIALS (a wrong current password) or TOKEN_REVOKED cannot.
const REFRESHABLE = new Set(['TOKEN_EXPIRED', 'TOKEN_MISSING', 'TOKEN_INVALID']);
const CSRF_COOKIES = ['__Host-csrf_token', 'csrf_token'];
// Inside the lock, time for a broadcast posted just before the previous holder released it to arrive.
const SETTLE_MS = 50;
// How long a new tab waits for an open tab to share the session.
const PEER_WAIT_MS = 200;
const RETRY_MS = 5_000;

/** An error answer of the service, in its `{statusCode, code, error, message}` shape. */
export class AuthError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.name = 'AuthError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function errorOf(response) {
  const body = await response.json().catch(() => undefined);
  return new AuthError(response.status, body?.code, body?.message, body);
}

function pickStorage(kind) {
  try {
    if (kind === 'local') return globalThis.localStorage;
    if (kind === 'session') return globalThis.sessionStorage;
  } catch {
    // Storage disabled (privacy settings): memory only.
  }
  return undefined;
}

/**
 * @param {import('./auth-client.js').AuthClientOptions} [options]
 * @returns {import('./auth-client.js').AuthClient}
 */
export function createAuthClient(options = {}) {
  const baseUrl = new URL(options.baseUrl || '/', globalThis.location?.href).href.replace(/\/+$/, '');
  const origin = new URL(baseUrl).origin;
  const sameOrigin = origin === globalThis.location?.origin;
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const storage = pickStorage(options.storage ?? 'session');
  const key = `auth-client:${origin}`;
  const lockName = options.lockName ?? 'auth-refresh';
  const listeners = new Set();
  if (options.onChange) listeners.add(options.onChange);

  /** @type {import('./auth-client.js').SessionState | null} */
  let state = null;
  let timer;
  let inflight;
  let closed = false;

  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(key) : undefined;
  const post = (message) => channel?.postMessage(message);

  function save() {
    try {
      if (state) storage?.setItem(key, JSON.stringify(state));
      else storage?.removeItem(key);
    } catch {
      // Quota or privacy mode: the in-memory state still works for this tab.
    }
  }

  function emit() {
    for (const listener of listeners) {
      try {
        listener(state);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** Adopts a session state (from a response, storage or another tab); `share` tells the other tabs. */
  function adopt(next, share) {
    state = next;
    save();
    schedule();
    if (share) post({ type: 'state', state });
    emit();
  }

  function fromTokenResponse(body) {
    const now = Date.now();
    return {
      csrfToken: body.csrfToken,
      expiresAt: now + body.expiresIn * 1000,
      refreshExpiresAt: now + body.refreshExpiresIn * 1000,
      issuedAt: now,
      user: body.user,
    };
  }

  function forget(share) {
    clearTimeout(timer);
    timer = undefined;
    if (state === null) return;
    state = null;
    save();
    if (share) post({ type: 'logout' });
    emit();
  }

  /** Refresh shortly before expiry: a quarter of the lifetime ahead, at most a minute. */
  function schedule() {
    clearTimeout(timer);
    timer = undefined;
    if (!state || closed) return;
    const lifetime = state.expiresAt - state.issuedAt;
    const ahead = options.refreshAheadMs ?? Math.min(60_000, lifetime / 4);
    const seen = state.issuedAt;
    const delay = Math.max(0, state.expiresAt - ahead - Date.now());
    timer = setTimeout(() => {
      refreshSession({ seen }).catch(() => {
        // A network error: try again soon (the access token may still be valid for a while).
        if (state && state.issuedAt === seen) timer = setTimeout(schedule, RETRY_MS);
      });
    }, delay);
  }

  channel?.addEventListener('message', ({ data }) => {
    if (!data || closed) return;
    if (data.type === 'hello') {
      if (state) post({ type: 'state', state });
    } else if (data.type === 'state') {
      if (data.state && (!state || data.state.issuedAt > state.issuedAt)) adopt(data.state, false);
    } else if (data.type === 'logout') {
      forget(false);
    }
  });

  function csrfToken() {
    if (state?.csrfToken) return state.csrfToken;
    // Same origin only: a frontend on another host cannot read the service's cookie, and uses csrfToken instead.
    if (!sameOrigin || typeof document === 'undefined') return undefined;
    for (const part of document.cookie.split('; ')) {
      const [name, ...value] = part.split('=');
      if (CSRF_COOKIES.includes(name)) return decodeURIComponent(value.join('='));
    }
    return undefined;
  }

  function send(path, init = {}) {
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    if (init.json !== undefined) headers.set('content-type', 'application/json');
    if (UNSAFE_METHODS.has(method)) {
      const csrf = csrfToken();
      if (csrf) headers.set('x-csrf-token', csrf);
    }
    const { json, ...rest } = init;
    return doFetch(`${baseUrl}${path}`, {
      ...rest,
      method,
      headers,
      body: json !== undefined ? JSON.stringify(json) : init.body,
      credentials: 'include',
    });
  }

  async function withLock(fn) {
    if (globalThis.navigator?.locks) return navigator.locks.request(lockName, fn);
    // No Web Locks (an insecure context): this tab refreshes on its own; the service's reuse interval absorbs races.
    return fn();
  }

  /**
   * One refresh for every tab: under the lock, a tab whose session was refreshed by another tab since `seen`
   * adopts that outcome instead of presenting the refresh token again.
   */
  function refreshSession({ seen = state?.issuedAt ?? 0 } = {}) {
    inflight ??= withLock(async () => {
      await sleep(SETTLE_MS);
      if (state && state.issuedAt > seen) return true;
      const csrf = csrfToken();
      if (!csrf) return false;
      const response = await send('/auth/refresh', { method: 'POST', json: { transport: 'cookie' } });
      if (response.ok) {
        adopt(fromTokenResponse(await response.json()), true);
        return true;
      }
      if (response.status === 401) {
        // The session is over (expired, revoked, reused): logged out in every tab.
        forget(true);
        return false;
      }
      if (response.status === 403) {
        // This tab's CSRF value is stale (CSRF_FAILED); the other tabs may hold the current one.
        forget(false);
        return false;
      }
      throw await errorOf(response);
    }).finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  async function request(path, init = {}) {
    const seen = state?.issuedAt ?? 0;
    const response = await send(path, init);
    if (response.status !== 401 || path.startsWith('/auth/refresh') || !csrfToken()) return response;
    const body = await response
      .clone()
      .json()
      .catch(() => undefined);
    if (!REFRESHABLE.has(body?.code)) return response;
    // One refresh, one retry: a second 401 goes to the caller.
    if (!(await refreshSession({ seen }))) return response;
    return send(path, init);
  }

  async function json(path, init = {}) {
    const response = await request(path, init);
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401 && REFRESHABLE.has(error.code)) forget(true);
      throw error;
    }
    return response.status === 204 ? undefined : response.json();
  }

  /** After a change of the account (TOTP on or off): this tab's state gets the user as the service now has it. */
  async function reloadUser() {
    const { user } = await json('/users/me');
    if (state) adopt({ ...state, user }, false);
    return user;
  }

  async function askPeers() {
    if (!channel) return;
    const started = Date.now();
    post({ type: 'hello' });
    while (!state && Date.now() - started < PEER_WAIT_MS) await sleep(20);
  }

  return {
    baseUrl,
    get state() {
      return state;
    },
    get user() {
      return state?.user ?? null;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start() {
      const stored = storage?.getItem(key);
      if (stored) {
        try {
          state = JSON.parse(stored);
        } catch {
          state = null;
        }
      }
      if (!state) await askPeers();
      if (!state && !csrfToken()) {
        emit();
        return null;
      }
      try {
        const { user } = await json('/users/me');
        if (state) adopt({ ...state, user }, false);
        else {
          // Same origin, a session from an earlier visit: its expiry is unknown, so refresh now for a known one.
          await refreshSession({ seen: 0 });
        }
        return state?.user ?? user;
      } catch (error) {
        if (error instanceof AuthError && error.status === 401) {
          forget(false);
          return null;
        }
        throw error;
      }
    },
    async register(body) {
      return json('/auth/register', { method: 'POST', json: body });
    },
    async login({ email, password }) {
      const response = await send('/auth/login', { method: 'POST', json: { email, password, transport: 'cookie' } });
      if (!response.ok) throw await errorOf(response);
      const body = await response.json();
      // TOTP enabled: no session yet, the caller completes the login with verifyMfa.
      if (body.mfaRequired) return body;
      adopt(fromTokenResponse(body), true);
      return body;
    },
    async verifyMfa({ mfaToken, code, recoveryCode }) {
      const second = recoveryCode !== undefined ? { recoveryCode } : { code };
      const response = await send('/auth/mfa/verify', {
        method: 'POST',
        json: { mfaToken, ...second, transport: 'cookie' },
      });
      if (!response.ok) throw await errorOf(response);
      const body = await response.json();
      // The same session state as after a one-step login.
      adopt(fromTokenResponse(body), true);
      return body;
    },
    /** A passkey assertion (from @simplewebauthn/browser's startAuthentication) for the challenge it answered. */
    async loginWithPasskey({ challengeId, response: assertion }) {
      const response = await send('/auth/passkeys/login', {
        method: 'POST',
        json: { challengeId, response: assertion, transport: 'cookie' },
      });
      if (!response.ok) throw await errorOf(response);
      const body = await response.json();
      adopt(fromTokenResponse(body), true);
      return body;
    },
    setupTotp: (currentPassword) => json('/auth/mfa/totp/setup', { method: 'POST', json: { currentPassword } }),
    async enableTotp(code) {
      const answer = await json('/auth/mfa/totp/enable', { method: 'POST', json: { code } });
      await reloadUser();
      return answer;
    },
    async disableTotp(currentPassword, code) {
      await json('/auth/mfa/totp/disable', { method: 'POST', json: { currentPassword, code } });
      await reloadUser();
    },
    regenerateRecoveryCodes: (currentPassword, code) =>
      json('/auth/mfa/recovery-codes', { method: 'POST', json: { currentPassword, code } }),
    async logout() {
      try {
        const response = await send('/auth/logout', { method: 'POST', json: {} });
        // 401 TOKEN_MISSING: no cookie left, already logged out.
        if (!response.ok && response.status !== 401) throw await errorOf(response);
      } finally {
        forget(true);
      }
    },
    refresh: () => refreshSession({}),
    request,
    json,
    me: async () => (await json('/users/me')).user,
    listSessions: () => json('/auth/sessions'),
    revokeSession: (id) => json(`/auth/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }),
    changePassword: (currentPassword, newPassword) =>
      json('/auth/password', { method: 'POST', json: { currentPassword, newPassword } }),
    async logoutAll() {
      await json('/auth/logout-all', { method: 'POST', json: {} });
      forget(true);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      channel?.close();
      listeners.clear();
    },
  };
}
