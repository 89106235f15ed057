// Schemas shared by every module: the error body, ids, pagination.
import { type Static, Type } from '@sinclair/typebox';
import { errorCodes } from '../errors.js';

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.Union(
      errorCodes.map((code) => Type.Literal(code)),
      { description: 'Stable machine-readable code, e.g. TOKEN_EXPIRED' },
    ),
    error: Type.String(),
    message: Type.String(),
  },
  { description: 'Every error response has this shape' },
);

/** Response schemas for the listed error statuses, all of the one error shape. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorSchema> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorSchema]));
}

// A plain UUID, either case: ajv's `uuid` format also takes a `urn:uuid:` prefix, which Postgres would refuse.
export const UuidSchema = Type.String({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  description: 'UUID',
});

export const IdParamsSchema = Type.Object({ id: UuidSchema });
export type IdParams = Static<typeof IdParamsSchema>;

export const PageQuerySchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: 'nextCursor of the previous page' }),
    ),
  },
  { additionalProperties: false },
);
export type PageQuery = Static<typeof PageQuerySchema>;

/** OpenAPI security of the authenticated routes: a Bearer access token, or the access cookie. */
export const bearerOrCookie: { [scheme: string]: string[] }[] = [{ bearerAuth: [] }, { cookieAuth: [] }];
