// Administration flows for tests: an admin made the way create-admin makes one, and the user-admin routes.
import type { App } from '../../src/app.js';
import { createOrPromoteAdmin } from '../../src/modules/users/users.service.js';
import {
  type Account,
  bearer,
  type Headers,
  type LoggedIn,
  login,
  STRONG_PASSWORD,
  uniqueEmail,
} from './session-flow.js';

/** Creates an admin (roles user + admin) directly, as `npm run create-admin` does; not through the public API. */
export async function createAdmin(app: App, options: { email?: string; password?: string } = {}): Promise<Account> {
  const email = options.email ?? uniqueEmail('admin');
  const password = options.password ?? STRONG_PASSWORD;
  const { user } = await createOrPromoteAdmin(
    { db: app.db, passwords: app.passwords, clock: app.clock, log: app.log },
    email,
    password,
  );
  return { id: user.id, email, password };
}

/** Creates an admin and logs it in through the API. */
export async function loginAdmin(app: App, options: { email?: string; password?: string } = {}): Promise<LoggedIn> {
  return login(app, await createAdmin(app, options));
}

export function listUsers(app: App, token: string, query: Record<string, string> = {}) {
  return app.inject({ method: 'GET', url: '/users', query, headers: bearer(token) });
}

export function getUser(app: App, token: string, id: string) {
  return app.inject({ method: 'GET', url: `/users/${id}`, headers: bearer(token) });
}

/** Where a request comes from: extra headers (e.g. user-agent) and the client address. */
export interface Origin {
  headers?: Headers;
  remoteAddress?: string;
}

export function putRoles(app: App, token: string, id: string, payload: unknown, from: Origin = {}) {
  return app.inject({
    method: 'PUT',
    url: `/users/${id}/roles`,
    headers: { ...bearer(token), ...from.headers },
    payload: payload as object,
    ...(from.remoteAddress ? { remoteAddress: from.remoteAddress } : {}),
  });
}

export function deleteUser(app: App, token: string, id: string, from: Origin = {}) {
  return app.inject({
    method: 'DELETE',
    url: `/users/${id}`,
    headers: { ...bearer(token), ...from.headers },
    ...(from.remoteAddress ? { remoteAddress: from.remoteAddress } : {}),
  });
}

export function myEvents(app: App, token: string, query: Record<string, string> = {}) {
  return app.inject({ method: 'GET', url: '/users/me/events', query, headers: bearer(token) });
}
