// Schemas of the JWKS.
import { Type } from '@sinclair/typebox';
import { ref } from '../common.schemas.js';

export const JwkSchema = Type.Object(
  {
    kty: Type.String(),
    kid: Type.String({ description: 'RFC 7638 thumbprint' }),
    use: Type.Literal('sig'),
    alg: Type.String(),
    n: Type.Optional(Type.String()),
    e: Type.Optional(Type.String()),
    crv: Type.Optional(Type.String()),
    x: Type.Optional(Type.String()),
    y: Type.Optional(Type.String()),
  },
  { $id: 'Jwk', description: 'The public members of one signing key' },
);

export const JwkSetSchema = Type.Object({ keys: Type.Array(ref(JwkSchema)) }, { $id: 'JwkSet' });
