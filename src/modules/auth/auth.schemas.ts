// Request and response schemas of the token-issuing routes.
import { type Static, Type } from '@sinclair/typebox';
import { optionalBodySchema } from '../../lib/trim-body.js';
import { ref } from '../common.schemas.js';
import { UserSchema } from '../users/users.schemas.js';

export const EmailSchema = Type.String({
  format: 'email',
  maxLength: 254,
  description: 'Trimmed; compared case-insensitively',
});
// The policy (8-128 code points after NFKC) is checked by the service, answering PASSWORD_TOO_WEAK; the body
// limit bounds the raw value.
export const PasswordSchema = Type.String({ description: '8 to 128 characters after NFKC normalisation' });
export const TransportSchema = Type.Union([Type.Literal('body'), Type.Literal('cookie')], {
  description: '`cookie` sets HttpOnly cookies and omits the tokens from the body',
});
export type Transport = Static<typeof TransportSchema>;

export const RegisterBodySchema = Type.Object(
  {
    email: EmailSchema,
    password: PasswordSchema,
    name: Type.Optional(Type.Union([Type.String({ maxLength: 100, description: 'Trimmed' }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type RegisterBody = Static<typeof RegisterBodySchema>;

export const LoginBodySchema = Type.Object(
  {
    email: EmailSchema,
    password: Type.String({ maxLength: 4096 }),
    transport: Type.Optional(TransportSchema),
  },
  { additionalProperties: false },
);
export type LoginBody = Static<typeof LoginBodySchema>;

export const TokenResponseSchema = Type.Object(
  {
    accessToken: Type.Optional(Type.String({ description: 'Absent with the cookie transport' })),
    tokenType: Type.Literal('Bearer'),
    expiresIn: Type.Integer({ description: 'Access token lifetime, seconds' }),
    refreshToken: Type.Optional(Type.String({ description: 'Absent with the cookie transport' })),
    refreshExpiresIn: Type.Integer({ description: 'Refresh token lifetime, seconds' }),
    csrfToken: Type.Optional(
      Type.String({ description: 'Cookie transport only: the csrf cookie value, to send as X-CSRF-Token' }),
    ),
    user: ref(UserSchema),
  },
  { $id: 'TokenResponse', description: 'A new token pair; with the cookie transport, the tokens are in cookies' },
);
export type TokenResponse = Static<typeof TokenResponseSchema>;

export const MfaRequiredSchema = Type.Object(
  {
    mfaRequired: Type.Literal(true),
    mfaToken: Type.String({ description: 'Opaque; send it to POST /auth/mfa/verify with a code' }),
    mfaExpiresIn: Type.Integer({ description: 'Seconds the second step stays open (300)' }),
    methods: Type.Array(Type.Union([Type.Literal('totp'), Type.Literal('recovery_code')])),
  },
  {
    $id: 'MfaRequired',
    additionalProperties: false,
    description: 'The password was right and TOTP is enabled: nothing is issued until POST /auth/mfa/verify',
  },
);
export type MfaRequired = Static<typeof MfaRequiredSchema>;

/** What a login answers: narrow on `mfaRequired` (present, and true, only in the second-step answer). */
export const LoginResponseSchema = Type.Union([ref(TokenResponseSchema), ref(MfaRequiredSchema)], {
  $id: 'LoginResponse',
  description: 'A token response, or `{mfaRequired: true, ...}` when a second factor is needed',
});

const RefreshTokenSchema = Type.String({ minLength: 1, maxLength: 512 });

export const RefreshBodySchema = optionalBodySchema(
  Type.Object(
    {
      refreshToken: Type.Optional({
        ...RefreshTokenSchema,
        description: 'Else the refresh cookie (then X-CSRF-Token is required)',
      }),
      transport: Type.Optional(TransportSchema),
    },
    { additionalProperties: false, description: 'May be omitted when the refresh cookie is sent' },
  ),
);
export type RefreshBody = Static<typeof RefreshBodySchema>;

export const LogoutBodySchema = optionalBodySchema(
  Type.Object(
    { refreshToken: Type.Optional(RefreshTokenSchema) },
    { additionalProperties: false, description: 'May be omitted when an access token or the refresh cookie is sent' },
  ),
);
export type LogoutBody = Static<typeof LogoutBodySchema>;

export const PasswordChangeBodySchema = Type.Object(
  { currentPassword: Type.String({ maxLength: 4096 }), newPassword: PasswordSchema },
  { additionalProperties: false },
);
export type PasswordChangeBody = Static<typeof PasswordChangeBodySchema>;
