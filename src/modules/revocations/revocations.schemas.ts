// Schemas of the revocation feed.
import { type Static, Type } from '@sinclair/typebox';
import { ref } from '../common.schemas.js';

// `limit` may be omitted (the document says so), but validation fills in its default, so the handler always sees it.
export const FeedQuerySchema = Type.Unsafe<{ since?: string; limit: number }>(
  Type.Object(
    {
      since: Type.Optional(
        Type.String({ pattern: '^[0-9]{1,18}$', description: 'The cursor of the previous response' }),
      ),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 1000, description: 'Page size' })),
    },
    { additionalProperties: false },
  ),
);

export const RevocationSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('jti'), Type.Literal('sid'), Type.Literal('sub')]),
    value: Type.String(),
    notBefore: Type.Optional(
      Type.String({ format: 'date-time', description: 'For `sub`: the time of the change that revoked the tokens' }),
    ),
    minVersion: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'For `sub`: access tokens whose `ver` claim is below this are revoked',
      }),
    ),
    expiresAt: Type.String({ format: 'date-time', description: 'After this, the entry no longer matters' }),
  },
  { $id: 'Revocation', description: 'One deny-list entry' },
);

export const RevocationFeedSchema = Type.Object(
  {
    items: Type.Array(ref(RevocationSchema)),
    cursor: Type.String({ description: 'Pass as `since` on the next poll; a page shorter than `limit` is the last' }),
  },
  { $id: 'RevocationFeed' },
);
export type RevocationFeed = Static<typeof RevocationFeedSchema>;
