// The one permission map, and the one way a route declares what it needs: `config: { permission }`.
// An onRoute hook turns that declaration into a preHandler after `authenticate` and into the OpenAPI entry.
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Forbidden } from '../errors.js';
import { principalOf } from './authenticate.js';

/** The roles there are: `user` is given at registration, `admin` by an admin or `npm run create-admin`. */
export const roleNames = ['user', 'admin'] as const;
export type RoleName = (typeof roleNames)[number];

export const permissions = ['users:read', 'users:manage'] as const;
export type Permission = (typeof permissions)[number];

/** Role → permissions. Every role may manage itself (self-service) without a permission. */
export const permissionsByRole: Readonly<Record<RoleName, readonly Permission[]>> = {
  user: [],
  admin: ['users:read', 'users:manage'],
};

export function can(roles: readonly string[], permission: Permission): boolean {
  // Own keys only: a role named `constructor` or `__proto__` must not reach Object.prototype.
  return roles.some(
    (role) => Object.hasOwn(permissionsByRole, role) && permissionsByRole[role as RoleName].includes(permission),
  );
}

/** Throws FORBIDDEN unless the authenticated caller's roles grant the permission. */
export function assertPermission(request: FastifyRequest, permission: Permission): void {
  if (!can(principalOf(request).roles, permission)) throw new Forbidden(permission);
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The permission this route requires, beyond authentication. */
    permission?: Permission;
  }
}

export default fp(
  async (app) => {
    app.addHook('onRoute', (route) => {
      const permission = route.config?.permission;
      if (!permission) return;
      const check = async (request: FastifyRequest) => assertPermission(request, permission);
      const existing = route.preHandler ? [route.preHandler].flat() : [];
      route.preHandler = [check, ...existing];
      if (route.schema) {
        const schema = route.schema as Record<string, unknown>;
        schema['x-permission'] = permission;
        schema.description = [schema.description, `Requires the \`${permission}\` permission.`]
          .filter(Boolean)
          .join(' ');
      }
    });
  },
  { name: 'authorize', dependencies: ['authenticate'] },
);
