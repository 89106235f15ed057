// Schemas of the health probes.
import { type Static, Type } from '@sinclair/typebox';

export const LiveSchema = Type.Object({ status: Type.Literal('ok') }, { $id: 'Live' });

const CheckSchema = Type.Union([Type.Literal('ok'), Type.Literal('down')]);
export const ReadySchema = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    checks: Type.Object({ postgres: CheckSchema, redis: CheckSchema }),
  },
  { $id: 'Ready', description: 'The same shape with 200 and 503 (the one exception to the error shape)' },
);
export type Ready = Static<typeof ReadySchema>;
