// Request and response schemas of the account routes: email verification, password reset, email change.
import { type Static, Type } from '@sinclair/typebox';
import { EmailSchema, PasswordSchema } from '../auth/auth.schemas.js';

export const AcceptedSchema = Type.Object(
  {},
  {
    $id: 'Accepted',
    additionalProperties: false,
    description: 'Accepted: the same answer whether or not the address belongs to an account',
  },
);

export const MailRequestBodySchema = Type.Object({ email: EmailSchema }, { additionalProperties: false });
export type MailRequestBody = Static<typeof MailRequestBodySchema>;

// Any string is looked up (an unknown one is ACTION_TOKEN_INVALID, like a used one); the bound keeps it cheap.
const ActionTokenSchema = Type.String({ minLength: 1, maxLength: 512, description: 'The `token` of the link' });

export const ActionTokenBodySchema = Type.Object({ token: ActionTokenSchema }, { additionalProperties: false });
export type ActionTokenBody = Static<typeof ActionTokenBodySchema>;

export const PasswordResetBodySchema = Type.Object(
  { token: ActionTokenSchema, newPassword: PasswordSchema },
  { additionalProperties: false },
);
export type PasswordResetBody = Static<typeof PasswordResetBodySchema>;

export const EmailChangeBodySchema = Type.Object(
  { newEmail: EmailSchema, currentPassword: Type.String({ maxLength: 4096 }) },
  { additionalProperties: false },
);
export type EmailChangeBody = Static<typeof EmailChangeBodySchema>;
