// Request and response schemas of the passkey routes: WebAuthn's JSON forms (PublicKeyCredential*OptionsJSON,
// RegistrationResponseJSON, AuthenticationResponseJSON) and our passkey resource.
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TransportSchema } from '../auth/auth.schemas.js';
import { ref, UuidSchema } from '../common.schemas.js';

// Bounds that keep a hostile body cheap; the 16 KiB body limit holds the whole anyway. The values are checked by
// the WebAuthn verification, so any string gets a 401 PASSKEY_INVALID when it is not what it claims to be.
const b64url = (description: string, maxLength = 4096) => Type.String({ maxLength, description });

/** Free-form objects WebAuthn leaves open (extensions, their results): any members. */
const openObject = (description: string) => Type.Object({}, { additionalProperties: true, description });

const AuthenticatorAttachmentSchema = Type.String({
  maxLength: 32,
  description: '`platform` or `cross-platform`',
});

const credentialMembers = (response: TSchema) => ({
  id: b64url('The credential id, base64url', 1024),
  rawId: b64url('The credential id again, base64url', 1024),
  type: Type.String({ maxLength: 32, description: '`public-key`' }),
  response,
  authenticatorAttachment: Type.Optional(Type.Union([AuthenticatorAttachmentSchema, Type.Null()])),
  clientExtensionResults: openObject('getClientExtensionResults()'),
});

export const RegistrationResponseSchema = Type.Object(
  credentialMembers(
    Type.Object(
      {
        clientDataJSON: b64url('base64url'),
        attestationObject: b64url('base64url', 8192),
      },
      {
        // Browsers add getters' values (authenticatorData, publicKey, publicKeyAlgorithm, transports) and may add more.
        additionalProperties: true,
        description: 'AuthenticatorAttestationResponseJSON',
      },
    ),
  ),
  {
    additionalProperties: false,
    description: 'RegistrationResponseJSON: what navigator.credentials.create() returned, in its JSON form',
  },
);

export const AuthenticationResponseSchema = Type.Object(
  credentialMembers(
    Type.Object(
      {
        clientDataJSON: b64url('base64url'),
        authenticatorData: b64url('base64url'),
        signature: b64url('base64url', 2048),
        userHandle: Type.Optional(Type.Union([b64url('base64url', 256), Type.Null()])),
      },
      { additionalProperties: true, description: 'AuthenticatorAssertionResponseJSON' },
    ),
  ),
  {
    additionalProperties: false,
    description: 'AuthenticationResponseJSON: what navigator.credentials.get() returned, in its JSON form',
  },
);

export const EmptyBodySchema = Type.Object({}, { additionalProperties: false, description: 'Always `{}`' });

export const PasskeyRegisterBodySchema = Type.Object(
  {
    response: RegistrationResponseSchema,
    name: Type.Optional(
      Type.Union([Type.String({ maxLength: 100, description: 'A label for the list, trimmed' }), Type.Null()]),
    ),
  },
  { additionalProperties: false },
);
export type PasskeyRegisterBody = Static<typeof PasskeyRegisterBodySchema>;

export const PasskeyLoginBodySchema = Type.Object(
  {
    challengeId: UuidSchema,
    response: AuthenticationResponseSchema,
    transport: Type.Optional(TransportSchema),
  },
  { additionalProperties: false },
);
export type PasskeyLoginBody = Static<typeof PasskeyLoginBodySchema>;

const CredentialDescriptorSchema = Type.Object(
  {
    id: Type.String({ description: 'Credential id, base64url' }),
    type: Type.String({ description: '`public-key`' }),
    transports: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);

export const PasskeyCreationOptionsSchema = Type.Object(
  {
    rp: Type.Object({ name: Type.String(), id: Type.Optional(Type.String()) }, { additionalProperties: false }),
    user: Type.Object(
      {
        id: Type.String({ description: 'The user handle, base64url' }),
        name: Type.String(),
        displayName: Type.String(),
      },
      { additionalProperties: false },
    ),
    challenge: Type.String({ description: 'base64url' }),
    pubKeyCredParams: Type.Array(
      Type.Object({ alg: Type.Integer(), type: Type.String() }, { additionalProperties: false }),
    ),
    timeout: Type.Optional(Type.Integer({ description: 'Milliseconds' })),
    excludeCredentials: Type.Optional(Type.Array(CredentialDescriptorSchema, { description: "The user's passkeys" })),
    authenticatorSelection: Type.Optional(
      Type.Object(
        {
          authenticatorAttachment: Type.Optional(Type.String()),
          requireResidentKey: Type.Optional(Type.Boolean()),
          residentKey: Type.Optional(Type.String({ description: '`required`' })),
          userVerification: Type.Optional(Type.String({ description: '`required`' })),
        },
        { additionalProperties: false },
      ),
    ),
    hints: Type.Optional(Type.Array(Type.String())),
    attestation: Type.Optional(Type.String()),
    attestationFormats: Type.Optional(Type.Array(Type.String())),
    extensions: Type.Optional(openObject('Client extension inputs')),
  },
  {
    $id: 'PasskeyCreationOptions',
    description:
      'PublicKeyCredentialCreationOptionsJSON (WebAuthn Level 3): pass to navigator.credentials.create() ' +
      '(e.g. with PublicKeyCredential.parseCreationOptionsFromJSON, or startRegistration of @simplewebauthn/browser)',
  },
);

export const PasskeyRequestOptionsSchema = Type.Object(
  {
    challenge: Type.String({ description: 'base64url' }),
    timeout: Type.Optional(Type.Integer({ description: 'Milliseconds' })),
    rpId: Type.Optional(Type.String()),
    allowCredentials: Type.Optional(
      Type.Array(CredentialDescriptorSchema, { description: 'Empty: any discoverable credential' }),
    ),
    userVerification: Type.Optional(Type.String({ description: '`required`' })),
    hints: Type.Optional(Type.Array(Type.String())),
    extensions: Type.Optional(openObject('Client extension inputs')),
  },
  {
    $id: 'PasskeyRequestOptions',
    description: 'PublicKeyCredentialRequestOptionsJSON (WebAuthn Level 3), for discoverable credentials',
  },
);

export const PasskeyLoginOptionsSchema = Type.Object(
  {
    challengeId: Type.String({ format: 'uuid', description: 'Send it back with the assertion' }),
    options: ref(PasskeyRequestOptionsSchema),
  },
  { $id: 'PasskeyLoginOptions', description: 'A login challenge (lives 300 s, works once) and its options' },
);

export const PasskeySchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'The last sign-in with it; null: never used',
    }),
  },
  { $id: 'Passkey', description: 'A passkey (WebAuthn credential) of the caller' },
);
export type Passkey = Static<typeof PasskeySchema>;

export const PasskeyEnvelopeSchema = Type.Object({ passkey: ref(PasskeySchema) }, { $id: 'PasskeyEnvelope' });

export const PasskeyListSchema = Type.Object(
  {
    items: Type.Array(ref(PasskeySchema), { description: 'Newest first' }),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
  },
  { $id: 'PasskeyList' },
);
export type PasskeyList = Static<typeof PasskeyListSchema>;
