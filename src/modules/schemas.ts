// The named schemas of the API, registered once: routes refer to them with `ref()`, validation and serialization
// resolve them, and the OpenAPI document lists them under components.schemas.
import fp from 'fastify-plugin';
import { AcceptedSchema } from './accounts/accounts.schemas.js';
import { LoginResponseSchema, MfaRequiredSchema, TokenResponseSchema } from './auth/auth.schemas.js';
import { ErrorSchema } from './common.schemas.js';
import { DiscoverySchema } from './discovery/discovery.schemas.js';
import { LiveSchema, ReadySchema } from './health/health.schemas.js';
import { JwkSchema, JwkSetSchema } from './jwks/jwks.schemas.js';
import { RecoveryCodesSchema, TotpSetupSchema } from './mfa/mfa.schemas.js';
import {
  PasskeyCreationOptionsSchema,
  PasskeyEnvelopeSchema,
  PasskeyListSchema,
  PasskeyLoginOptionsSchema,
  PasskeyRequestOptionsSchema,
  PasskeySchema,
} from './passkeys/passkeys.schemas.js';
import { RevocationFeedSchema, RevocationSchema } from './revocations/revocations.schemas.js';
import { SecurityEventListSchema, SecurityEventSchema } from './security-events/security-events.schemas.js';
import { SessionListSchema, SessionSchema } from './sessions/sessions.schemas.js';
import { UserEnvelopeSchema, UserListSchema, UserSchema } from './users/users.schemas.js';

export const componentSchemas = [
  ErrorSchema,
  UserSchema,
  UserEnvelopeSchema,
  UserListSchema,
  TokenResponseSchema,
  MfaRequiredSchema,
  LoginResponseSchema,
  AcceptedSchema,
  TotpSetupSchema,
  RecoveryCodesSchema,
  PasskeySchema,
  PasskeyEnvelopeSchema,
  PasskeyListSchema,
  PasskeyCreationOptionsSchema,
  PasskeyRequestOptionsSchema,
  PasskeyLoginOptionsSchema,
  SessionSchema,
  SessionListSchema,
  SecurityEventSchema,
  SecurityEventListSchema,
  JwkSchema,
  JwkSetSchema,
  DiscoverySchema,
  RevocationSchema,
  RevocationFeedSchema,
  LiveSchema,
  ReadySchema,
];

export default fp(
  async (app) => {
    for (const schema of componentSchemas) app.addSchema(schema);
  },
  { name: 'schemas' },
);
