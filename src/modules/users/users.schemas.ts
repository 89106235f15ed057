// The public user: everything a response may say about a user (never a password hash).
import { type Static, Type } from '@sinclair/typebox';
import { roleNames } from '../../plugins/authorize.js';

export const UserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String({ format: 'email' }),
    name: Type.Union([Type.String(), Type.Null()]),
    roles: Type.Array(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { description: 'A user as the API shows it' },
);
export type User = Static<typeof UserSchema>;

export const UserEnvelopeSchema = Type.Object({ user: UserSchema });

export const UserListSchema = Type.Object({
  items: Type.Array(UserSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});
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
