// Types of client/auth-client.js, the browser client of the auth service (cookie transport).

export interface User {
  id: string;
  email: string;
  name: string | null;
  roles: string[];
  createdAt: string;
  updatedAt: string;
  /** TOTP is on: a password login answers MfaRequired. */
  mfaEnabled?: boolean;
  [extra: string]: unknown;
}

/** The cookie-transport token response: no tokens, only their lifetimes and the CSRF value. */
export interface CookieTokenResponse {
  tokenType: 'Bearer';
  expiresIn: number;
  refreshExpiresIn: number;
  csrfToken: string;
  user: User;
}

/** Answered by login instead of a token response when the account has TOTP enabled. */
export interface MfaRequired {
  mfaRequired: true;
  mfaToken: string;
  mfaExpiresIn: number;
  methods: string[];
}

/** The second step of a login: a code of the authenticator app, or one of the recovery codes. */
export type MfaProof = { mfaToken: string; code: string } | { mfaToken: string; recoveryCode: string };

/** `POST /auth/mfa/totp/setup`: the new secret (base32, for manual entry) and its otpauth URL (for a QR code). */
export interface TotpSetup {
  secret: string;
  otpauthUrl: string;
}

export interface RecoveryCodes {
  /** Ten single-use codes, shown once. */
  recoveryCodes: string[];
}

export interface Session {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ip: string | null;
  current: boolean;
}

/** What the client knows of the session; the tokens themselves stay in HttpOnly cookies. */
export interface SessionState {
  /** The X-CSRF-Token value: from the token response, since another host cannot read the csrf cookie. */
  csrfToken: string;
  /** Epoch milliseconds when the access token expires. */
  expiresAt: number;
  refreshExpiresAt: number;
  /** Epoch milliseconds of the login or refresh that produced this state (orders states shared between tabs). */
  issuedAt: number;
  user: User;
}

export interface AuthClientOptions {
  /** Origin (and path prefix) of the auth service; default: this page's origin. */
  baseUrl?: string;
  /** Where the session state is kept per tab: `session` (default), `local`, or `memory`. */
  storage?: 'session' | 'local' | 'memory';
  /** How long before expiry to refresh; default a quarter of the access token's lifetime, at most 60 s. */
  refreshAheadMs?: number;
  /** Web Locks name serialising refreshes across tabs; default `auth-refresh`. */
  lockName?: string;
  /** Called whenever the session state changes: login, refresh (in any tab), logout or expiry (`null`). */
  onChange?: (state: SessionState | null) => void;
  fetch?: typeof fetch;
}

export interface RequestOptions extends RequestInit {
  /** A body to send as JSON (sets `content-type: application/json`). */
  json?: unknown;
}

export declare class AuthError extends Error {
  constructor(status: number, code: string | undefined, message: string | undefined, body: unknown);
  readonly status: number;
  /** The contract's error code, e.g. `INVALID_CREDENTIALS`, `CSRF_FAILED`. */
  readonly code: string | undefined;
  readonly body: unknown;
}

export interface AuthClient {
  readonly baseUrl: string;
  readonly state: SessionState | null;
  readonly user: User | null;
  /** Restores the session of this tab (storage, another open tab, or the same-origin csrf cookie); `null` if none. */
  start(): Promise<User | null>;
  subscribe(listener: (state: SessionState | null) => void): () => void;
  register(body: { email: string; password: string; name?: string }): Promise<{ user: User }>;
  /** A one-step login holds the session at once; with TOTP on it answers MfaRequired and holds nothing yet. */
  login(credentials: { email: string; password: string }): Promise<CookieTokenResponse | MfaRequired>;
  /**
   * The second step after MfaRequired (`POST /auth/mfa/verify`, cookie transport): then the session is held exactly
   * as after a one-step login. A wrong code throws AuthError MFA_CODE_INVALID, a dead mfaToken MFA_TOKEN_INVALID.
   */
  verifyMfa(proof: MfaProof): Promise<CookieTokenResponse>;
  /**
   * Signs in with a passkey: `response` is the assertion of startAuthentication for the challenge of
   * `POST /auth/passkeys/login/options`. Holds the session exactly as after a password login; a refused passkey
   * throws AuthError PASSKEY_INVALID.
   */
  loginWithPasskey(input: { challengeId: string; response: unknown }): Promise<CookieTokenResponse>;
  /** Starts enrolling an authenticator app (inactive until enableTotp); a wrong password is INVALID_CREDENTIALS. */
  setupTotp(currentPassword: string): Promise<TotpSetup>;
  /** Turns TOTP on with a code of the new secret; the ten recovery codes are shown once. Updates `user`. */
  enableTotp(code: string): Promise<RecoveryCodes>;
  /** Turns TOTP off (its recovery codes go with it). Updates `user`. */
  disableTotp(currentPassword: string, code: string): Promise<void>;
  /** A new set of ten recovery codes; the old set stops working. */
  regenerateRecoveryCodes(currentPassword: string, code: string): Promise<RecoveryCodes>;
  /** Ends the session on the service and in every tab; resolves even when it was already over. */
  logout(): Promise<void>;
  /** Refreshes now (coordinated across tabs); `false` when the session is over. */
  refresh(): Promise<boolean>;
  /** fetch against the service: cookies included, X-CSRF-Token on unsafe methods, one refresh and retry on 401. */
  request(path: string, init?: RequestOptions): Promise<Response>;
  /** `request`, then the JSON body (undefined for 204); an error answer throws AuthError. */
  json<T = unknown>(path: string, init?: RequestOptions): Promise<T>;
  me(): Promise<User>;
  listSessions(): Promise<{ items: Session[]; nextCursor?: string | null }>;
  revokeSession(id: string): Promise<void>;
  changePassword(currentPassword: string, newPassword: string): Promise<void>;
  logoutAll(): Promise<void>;
  /** Stops timers and leaves the tab channel. */
  close(): void;
}

export declare function createAuthClient(options?: AuthClientOptions): AuthClient;
