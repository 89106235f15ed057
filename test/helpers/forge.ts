// Hostile token forging: JWTs built by hand with node:crypto, signed with any key, any secret, or nothing at all.
import {
  constants,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

export type JoseHeader = Record<string, unknown>;
export type Claims = Record<string, unknown>;

/** Values set to `undefined` remove the member, so a test can drop a required claim or header. */
export type Overrides = Record<string, unknown>;

export interface DecodedToken {
  header: JoseHeader;
  claims: Claims;
  /** The signature segment as sent (base64url). */
  signature: string;
}

export const base64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url');
export const encodeSegment = (value: unknown): string => base64url(JSON.stringify(value));

/** The header and claims of any compact JWS, without verifying anything. */
export function decodeToken(token: string): DecodedToken {
  const [header, claims, signature] = token.split('.');
  if (header === undefined || claims === undefined || signature === undefined) {
    throw new Error(`not a compact JWS: ${token}`);
  }
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as JoseHeader,
    claims: JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as Claims,
    signature,
  };
}

export function applyOverrides<T extends Record<string, unknown>>(base: T, overrides: Overrides = {}): T {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete result[key];
    else result[key] = value;
  }
  return result as T;
}

/** `header.payload` exactly as a signer would sign it. */
export function signingInput(header: JoseHeader, claims: Claims): string {
  return `${encodeSegment(header)}.${encodeSegment(claims)}`;
}

/** Any header and claims with an arbitrary signature segment. */
export function assemble(header: JoseHeader, claims: Claims, signature: string | Buffer = ''): string {
  const encoded = typeof signature === 'string' ? signature : base64url(signature);
  return `${signingInput(header, claims)}.${encoded}`;
}

export type AsymmetricAlg = 'RS256' | 'RS384' | 'RS512' | 'PS256';

/** Signs with any RSA private key; the header is used as given (alg is not forced). */
export function signRsa(
  header: JoseHeader,
  claims: Claims,
  privateKey: KeyObject | string,
  alg: AsymmetricAlg = 'RS256',
): string {
  const input = signingInput(header, claims);
  const digest = `sha${alg.slice(2)}`;
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const signature = alg.startsWith('PS')
    ? sign(digest, Buffer.from(input), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    : sign(digest, Buffer.from(input), key);
  return `${input}.${base64url(signature)}`;
}

export type HmacAlg = 'HS256' | 'HS384' | 'HS512';

/** HMAC with any secret: the classic RS/HS confusion uses the victim's public key here. The header is kept as given. */
export function signHmac(header: JoseHeader, claims: Claims, secret: string | Buffer, alg: HmacAlg = 'HS256'): string {
  const input = signingInput(header, claims);
  return `${input}.${createHmac(`sha${alg.slice(2)}`, secret)
    .update(input)
    .digest('base64url')}`;
}

export const signHs256 = (header: JoseHeader, claims: Claims, secret: string | Buffer): string =>
  signHmac(header, claims, secret, 'HS256');

/** `alg: none` with an empty signature segment (the header's other members are kept). */
export function unsigned(header: JoseHeader, claims: Claims, alg = 'none'): string {
  return assemble({ ...header, alg }, claims, '');
}

/** A real token with its claims changed and its original header and signature kept. */
export function tamperClaims(token: string, overrides: Overrides): string {
  const { header, claims, signature } = decodeToken(token);
  return assemble(header, applyOverrides(claims, overrides), signature);
}

/** RFC 7638 thumbprint of an RSA public key, computed independently of the service's code. */
export function rsaThumbprint(publicKey: KeyObject): string {
  const { e, n } = publicKey.export({ format: 'jwk' });
  return createHash('sha256')
    .update(JSON.stringify({ e, kty: 'RSA', n }))
    .digest('base64url');
}

export interface RsaKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** SPKI PEM. */
  publicKeyPem: string;
  /** Public members only: `{kty, n, e}`. */
  publicJwk: { kty: string; n: string; e: string };
  kid: string;
}

function toRsaKey(privateKey: KeyObject): RsaKey {
  const publicKey = createPublicKey(privateKey);
  const { kty, n, e } = publicKey.export({ format: 'jwk' });
  return {
    privateKey,
    publicKey,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicJwk: { kty: kty as string, n: n as string, e: e as string },
    kid: rsaThumbprint(publicKey),
  };
}

/** A fresh attacker key (RSA 2048). */
export function attackerKey(): RsaKey {
  return toRsaKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
}

/** OUR signing key: the one `.pem` file of a test's KEYS_DIR. */
export async function ourKey(keysDir: string): Promise<RsaKey & { privateKeyPem: string }> {
  const pems = (await readdir(keysDir)).filter((file) => file.endsWith('.pem'));
  if (pems.length !== 1 || pems[0] === undefined) {
    throw new Error(`expected one .pem in ${keysDir}, found ${pems.length}`);
  }
  const privateKeyPem = await readFile(path.join(keysDir, pems[0]), 'utf8');
  return { ...toRsaKey(createPrivateKey(privateKeyPem)), privateKeyPem };
}

/** RFC 9562 UUIDv7 for `ms`, as our jti. */
export function uuidv7(ms: number): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface ClaimsBase {
  issuer: string;
  audience: string;
  /** A real user id: the route looks the user up. */
  subject: string;
  /** A real session id. */
  sessionId: string;
  roles?: string[];
  /** Epoch ms of issue (the app's clock). */
  nowMs: number;
  /** Seconds; 900 by default. */
  ttl?: number;
  /** The user's token version (`ver`); 0 by default, a new user's. */
  tokenVersion?: number;
  amr?: string[];
}

/** A complete, valid claim set like the service issues, with overrides applied (`undefined` drops a claim). */
export function validClaims(base: ClaimsBase, overrides: Overrides = {}): Claims {
  const iat = Math.floor(base.nowMs / 1000);
  return applyOverrides(
    {
      iss: base.issuer,
      aud: base.audience,
      sub: base.subject,
      iat,
      exp: iat + (base.ttl ?? 900),
      jti: uuidv7(base.nowMs),
      sid: base.sessionId,
      roles: base.roles ?? ['user'],
      ver: base.tokenVersion ?? 0,
      amr: base.amr ?? ['pwd'],
    },
    overrides,
  );
}

/** Signs `claims` with OUR key from `keysDir`, header `{alg: RS256, typ: at+jwt, kid}` plus overrides. */
export async function mintWithOurKey(
  keysDir: string,
  claims: Claims,
  headerOverrides: Overrides = {},
): Promise<string> {
  const key = await ourKey(keysDir);
  const header = applyOverrides({ alg: 'RS256', typ: 'at+jwt', kid: key.kid }, headerOverrides);
  return signRsa(header, claims, key.privateKey);
}
