// The public user: everything a response may say about a user (never a password hash).
import { type Static, Type } from '@sinclair/typebox';
import { roleNames } from '../../plugins/authorize.js';
import { ref } from '../common.schemas.js';

export const UserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String({ format: 'email', description: 'Lower-case' }),
    name: Type.Union([Type.String(), Type.Null()]),
    roles: Type.Array(Type.String(), { description: 'Role names, e.g. `user`, `admin`' }),
    emailVerified: Type.Boolean({ description: 'The user opened a link mailed to `email`' }),
    mfaEnabled: Type.Boolean({ description: 'TOTP is enabled: a login needs a second step' }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'User', description: 'A user as the API shows it' },
);
export type User = Static<typeof UserSchema>;

export const UserEnvelopeSchema = Type.Object({ user: ref(UserSchema) }, { $id: 'UserEnvelope' });

export const UserListSchema = Type.Object(
  {
    items: Type.Array(ref(UserSchema)),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
  },
  { $id: 'UserList' },
);
export type UserList = Static<typeof UserListSchema>;

export const RolesBodySchema = Type.Object(
  {
    roles: Type.Array(Type.Union(roleNames.map((role) => Type.Literal(role))), {
      minItems: 1,
      uniqueItems: true,
      description: 'The complete new set of roles: non-empty, distinct, known',
    }),
  },
  { additionalProperties: false },
);
export type RolesBody = Static<typeof RolesBodySchema>;
