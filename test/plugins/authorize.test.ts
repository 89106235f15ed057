// The one permission map and its enforcement: `can()` itself, every admin route refusing a user (403 FORBIDDEN with
// the insufficient_scope challenge, and no side effect) and serving an admin, and `x-permission` in the OpenAPI
// document. Plus the plugin alone on a bare Fastify: the check runs before the route's own preHandlers.
import Fastify, { type FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import t from 'tap';
import authorizePlugin, { can, permissions, permissionsByRole } from '../../src/plugins/authorize.js';
import { createAdmin, deleteUser, getUser, listUsers, putRoles } from '../helpers/admin.js';
import { buildTestApp } from '../helpers/app.js';
import { mintWithOurKey, validClaims } from '../helpers/forge.js';
import {
  assertError,
  type LoggedIn,
  login,
  me,
  REALM,
  type Response,
  register,
  registerAndLogin,
} from '../helpers/session-flow.js';

const INSUFFICIENT_SCOPE = `${REALM}, error="insufficient_scope"`;

// Built before any subtest starts: tap ends the root test (and runs its teardowns) once its queue drains.
const { app, config } = await buildTestApp(t);
const adminAccount = await createAdmin(app);
const admin = await login(app, adminAccount);
const user: LoggedIn = await registerAndLogin(app);

t.test('can(): the role-to-permission map', async (t) => {
  t.same(permissions, ['users:read', 'users:manage'], 'the permissions');
  t.same(Object.keys(permissionsByRole).sort(), ['admin', 'user'], 'one entry per role');
  for (const permission of permissions) {
    t.equal(can(['admin'], permission), true, `admin has ${permission}`);
    t.equal(can(['user', 'admin'], permission), true, `user+admin has ${permission}`);
    t.equal(can(['admin', 'user'], permission), true, `role order does not matter for ${permission}`);
    t.equal(can(['user'], permission), false, `user lacks ${permission}`);
    t.equal(can([], permission), false, `no roles: no ${permission}`);
    t.equal(can(['superuser'], permission), false, `an unknown role grants nothing (${permission})`);
    t.equal(can(['ADMIN'], permission), false, `role names are exact (${permission})`);
  }
  t.ok(
    Object.values(permissionsByRole).every((granted) => granted.every((p) => permissions.includes(p))),
    'the map names only known permissions',
  );
});

t.test('can(): a role named like an Object.prototype member grants nothing (and does not throw)', async (t) => {
  for (const role of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    let result: boolean | Error;
    try {
      result = can([role], 'users:read');
    } catch (error) {
      result = error as Error;
    }
    t.equal(result, false, `can(['${role}']) is false`);
  }
});

t.test('the plugin alone: the permission check comes first, before the route preHandlers', async (t) => {
  const app = Fastify();
  t.teardown(() => app.close());
  // A stand-in for the verifier: the principal's roles come from a header (this test is about authorize only).
  await app.register(
    fp(
      async (instance) => {
        instance.decorateRequest('principal', null);
        instance.decorate('authenticate', async (request: FastifyRequest) => {
          const roles = String(request.headers['x-roles'] ?? '')
            .split(',')
            .filter(Boolean);
          request.principal = {
            userId: 'u',
            sessionId: 's',
            roles,
            amr: ['pwd'],
          };
        });
      },
      { name: 'authenticate' },
    ),
  );
  await app.register(authorizePlugin);
  const ran: string[] = [];
  await app.register(async (scoped) => {
    scoped.addHook('onRequest', scoped.authenticate);
    scoped.get(
      '/guarded',
      {
        config: { permission: 'users:manage' },
        preHandler: async () => {
          ran.push('route preHandler');
        },
        schema: { description: 'Guarded.' },
      },
      async () => ({ ok: true }),
    );
    scoped.get('/open', async () => ({ ok: true }));
  });
  await app.ready();

  const denied = await app.inject({ method: 'GET', url: '/guarded', headers: { 'x-roles': 'user' } });
  t.equal(denied.statusCode, 403, 'a user is refused');
  t.equal(denied.json().code, 'FORBIDDEN', 'FORBIDDEN');
  t.match(denied.json().message, /users:manage/, 'the message names the missing permission');
  t.same(ran, [], 'the route preHandler did not run for a refused request');

  const allowed = await app.inject({ method: 'GET', url: '/guarded', headers: { 'x-roles': 'user,admin' } });
  t.equal(allowed.statusCode, 200, 'an admin passes');
  t.same(ran, ['route preHandler'], 'then the route preHandler runs');

  const open = await app.inject({ method: 'GET', url: '/open', headers: { 'x-roles': '' } });
  t.equal(open.statusCode, 200, 'a route without `permission` needs none');
});

type Route = { name: string; send: (token: string, targetId: string) => Promise<Response> };

const adminRoutes: Route[] = [
  { name: 'GET /users', send: (token) => listUsers(app, token) },
  { name: 'GET /users/:id (another user)', send: (token, id) => getUser(app, token, id) },
  { name: 'PUT /users/:id/roles', send: (token, id) => putRoles(app, token, id, { roles: ['user', 'admin'] }) },
  { name: 'DELETE /users/:id', send: (token, id) => deleteUser(app, token, id) },
];

t.test('a user gets 403 FORBIDDEN with insufficient_scope on every admin route, and nothing changes', async (t) => {
  const target = await register(app);
  for (const route of adminRoutes) {
    const response = await route.send(user.accessToken, target.id);
    assertError(t, response, 403, 'FORBIDDEN', route.name);
    t.equal(response.headers['www-authenticate'], INSUFFICIENT_SCOPE, `${route.name}: insufficient_scope challenge`);
  }
  // Also for an id that does not exist: the refusal does not reveal whether it does.
  const unknown = '00000000-0000-4000-8000-000000000000';
  for (const route of adminRoutes.slice(1)) {
    assertError(t, await route.send(user.accessToken, unknown), 403, 'FORBIDDEN', `${route.name}, unknown id`);
  }
  // Refusing also for the user's own id on the management routes: self-service is not self-promotion.
  assertError(
    t,
    await putRoles(app, user.accessToken, user.account.id, { roles: ['user', 'admin'] }),
    403,
    'FORBIDDEN',
    'promoting oneself',
  );
  assertError(t, await deleteUser(app, user.accessToken, user.account.id), 403, 'FORBIDDEN', 'deleting oneself');

  const check = await getUser(app, admin.accessToken, target.id);
  t.equal(check.statusCode, 200, 'the target still exists');
  t.same(check.json().user.roles, ['user'], 'and its roles are unchanged');
  t.equal((await me(app, user.accessToken)).statusCode, 200, "the user's own token still works");
  t.same((await getUser(app, admin.accessToken, user.account.id)).json().user.roles, ['user'], 'no self-promotion');
});

t.test('without a token the admin routes answer 401 TOKEN_MISSING, not 403', async (t) => {
  const target = await register(app);
  for (const [method, url] of [
    ['GET', '/users'],
    ['GET', `/users/${target.id}`],
    ['PUT', `/users/${target.id}/roles`],
    ['DELETE', `/users/${target.id}`],
  ] as const) {
    const response = await app.inject({
      method,
      url,
      ...(method === 'PUT' ? { payload: { roles: ['user'] } } : {}),
    });
    assertError(t, response, 401, 'TOKEN_MISSING', `${method} ${url}`);
  }
});

t.test('an admin gets 200 / 204 on every admin route', async (t) => {
  const target = await register(app);
  const list = await listUsers(app, admin.accessToken);
  t.equal(list.statusCode, 200, 'GET /users: 200');
  t.ok(
    list.json().items.some((item: { id: string }) => item.id === target.id),
    'GET /users lists the target',
  );
  const one = await getUser(app, admin.accessToken, target.id);
  t.equal(one.statusCode, 200, 'GET /users/:id: 200');
  t.equal(one.json().user.id, target.id, 'GET /users/:id: the target');
  const roles = await putRoles(app, admin.accessToken, target.id, { roles: ['user', 'admin'] });
  t.equal(roles.statusCode, 200, 'PUT /users/:id/roles: 200');
  t.same([...roles.json().user.roles].sort(), ['admin', 'user'], 'PUT: the new roles');
  const deleted = await deleteUser(app, admin.accessToken, target.id);
  t.equal(deleted.statusCode, 204, 'DELETE /users/:id: 204');
  t.equal(deleted.body, '', 'DELETE: empty body');
  t.equal((await getUser(app, admin.accessToken, target.id)).statusCode, 404, 'the target is gone');
});

t.test('a token whose roles name an Object.prototype member gets 403, not 500', async (t) => {
  const claims = validClaims({
    issuer: config.issuer,
    audience: config.audience,
    subject: user.account.id,
    sessionId: user.sessionId,
    roles: ['toString'],
    nowMs: Date.now(),
  });
  const token = await mintWithOurKey(config.keysDir, claims);
  const response = await listUsers(app, token);
  t.equal(response.statusCode, 403, 'GET /users with roles ["toString"]: 403');
  t.equal(response.json().code, 'FORBIDDEN', 'code FORBIDDEN');
});

t.test('OpenAPI: the admin routes carry x-permission; self-service routes do not', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/docs/json' });
  t.equal(response.statusCode, 200, '/docs/json answers');
  const paths = response.json().paths as Record<string, Record<string, Record<string, unknown>>>;
  const expected: [string, string, string][] = [
    ['/users', 'get', 'users:read'],
    ['/users/{id}/roles', 'put', 'users:manage'],
    ['/users/{id}', 'delete', 'users:manage'],
  ];
  for (const [path, method, permission] of expected) {
    const operation = paths[path]?.[method];
    t.ok(operation, `${method.toUpperCase()} ${path} is documented`);
    t.equal(operation?.['x-permission'], permission, `${method.toUpperCase()} ${path}: x-permission ${permission}`);
    t.match(String(operation?.description), permission, `${method.toUpperCase()} ${path}: description names it`);
    t.ok((operation?.responses as Record<string, unknown>)?.['403'], `${method.toUpperCase()} ${path}: 403 documented`);
  }
  const getOne = paths['/users/{id}']?.get;
  t.match(getOne?.['x-permission'], /users:read/, 'GET /users/{id}: x-permission names users:read (or self)');
  t.ok((getOne?.responses as Record<string, unknown>)?.['403'], 'GET /users/{id}: 403 documented');
  for (const [path, method] of [
    ['/users/me', 'get'],
    ['/users/me/events', 'get'],
    ['/auth/logout-all', 'post'],
  ] as const) {
    t.ok(paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`);
    t.equal(paths[path]?.[method]?.['x-permission'], undefined, `${method.toUpperCase()} ${path}: no x-permission`);
  }
});
