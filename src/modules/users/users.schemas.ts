// The public user: everything a response may say about a user (never a password hash).
import { type Static, Type } from '@sinclair/typebox';

export const roleNames = ['user', 'admin'] as const;
export type RoleName = (typeof roleNames)[number];

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
