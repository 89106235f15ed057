// Request and response schemas of the TOTP, recovery-code and second-step routes.
import { type Static, Type } from '@sinclair/typebox';
import { TransportSchema } from '../auth/auth.schemas.js';

// Any string is checked (a malformed code is MFA_CODE_INVALID like a wrong one); the bound keeps it cheap.
const CodeSchema = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'The 6-digit code of the authenticator app',
});
const CurrentPasswordSchema = Type.String({ maxLength: 4096 });

export const TotpSetupBodySchema = Type.Object(
  { currentPassword: CurrentPasswordSchema },
  { additionalProperties: false },
);
export const TotpEnableBodySchema = Type.Object({ code: CodeSchema }, { additionalProperties: false });
export const TotpProofBodySchema = Type.Object(
  { currentPassword: CurrentPasswordSchema, code: CodeSchema },
  { additionalProperties: false },
);

export const TotpSetupSchema = Type.Object(
  {
    secret: Type.String({ description: 'Base32; shown once, for manual entry' }),
    otpauthUrl: Type.String({ description: 'otpauth://totp/... for a QR code' }),
  },
  { $id: 'TotpSetup', description: 'A new secret, not active until POST /auth/mfa/totp/enable sees a code of it' },
);

export const RecoveryCodesSchema = Type.Object(
  {
    recoveryCodes: Type.Array(Type.String(), {
      minItems: 10,
      maxItems: 10,
      description: 'Ten single-use codes, shown once (stored hashed)',
    }),
  },
  { $id: 'RecoveryCodes' },
);

const MfaTokenSchema = Type.String({ minLength: 1, maxLength: 512, description: 'From the login answer' });

export const MfaVerifyBodySchema = Type.Union(
  [
    Type.Object(
      { mfaToken: MfaTokenSchema, code: CodeSchema, transport: Type.Optional(TransportSchema) },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        mfaToken: MfaTokenSchema,
        recoveryCode: Type.String({ minLength: 1, maxLength: 64, description: 'One of the recovery codes' }),
        transport: Type.Optional(TransportSchema),
      },
      { additionalProperties: false },
    ),
  ],
  { description: 'The second step: a TOTP code, or a recovery code' },
);
export type MfaVerifyBody = Static<typeof MfaVerifyBodySchema>;
