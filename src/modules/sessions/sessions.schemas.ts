// Schemas of the session routes.
import { type Static, Type } from '@sinclair/typebox';
import { ref } from '../common.schemas.js';

export const SessionSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.String({ format: 'date-time', description: 'Absolute end of the session' }),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    ip: Type.Union([Type.String(), Type.Null()]),
    current: Type.Boolean({ description: 'The session of the token making this request' }),
  },
  { $id: 'Session', description: 'A live session (login) of the caller' },
);

export const SessionListSchema = Type.Object(
  {
    items: Type.Array(ref(SessionSchema)),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
  },
  { $id: 'SessionList' },
);
export type SessionList = Static<typeof SessionListSchema>;
