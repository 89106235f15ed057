// Schemas of the security-event list.
import { type Static, Type } from '@sinclair/typebox';
import { securityEventTypes } from '../../db/schema.js';

export const SecurityEventSchema = Type.Object({
  type: Type.Union(securityEventTypes.map((type) => Type.Literal(type))),
  at: Type.String({ format: 'date-time' }),
  ip: Type.Union([Type.String(), Type.Null()]),
  userAgent: Type.Union([Type.String(), Type.Null()]),
});

export const SecurityEventListSchema = Type.Object({
  items: Type.Array(SecurityEventSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});
export type SecurityEventList = Static<typeof SecurityEventListSchema>;
