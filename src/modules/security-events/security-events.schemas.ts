// Schemas of the security-event list.
import { type Static, Type } from '@sinclair/typebox';
import { securityEventTypes } from '../../db/schema.js';
import { ref } from '../common.schemas.js';

export const SecurityEventSchema = Type.Object(
  {
    type: Type.Union(securityEventTypes.map((type) => Type.Literal(type))),
    at: Type.String({ format: 'date-time' }),
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'SecurityEvent', description: 'Something that happened to an account' },
);

export const SecurityEventListSchema = Type.Object(
  {
    items: Type.Array(ref(SecurityEventSchema)),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
  },
  { $id: 'SecurityEventList' },
);
export type SecurityEventList = Static<typeof SecurityEventListSchema>;
