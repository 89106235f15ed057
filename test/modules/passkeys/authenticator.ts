// A software WebAuthn authenticator for the API tests: an ES256 key from node:crypto, attestation `none`, and
// everything a browser would send (clientDataJSON, authenticatorData, the CBOR attestation object, the signature),
// with knobs to get each part wrong on purpose (origin, RP ID, counter, flags, signature).
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';

type Cbor = number | string | Uint8Array | Cbor[] | Map<number | string, Cbor> | { [key: string]: Cbor };

function head(major: number, length: number): Buffer {
  if (length < 24) return Buffer.from([(major << 5) | length]);
  if (length < 0x100) return Buffer.from([(major << 5) | 24, length]);
  if (length < 0x10000) {
    const out = Buffer.alloc(3);
    out[0] = (major << 5) | 25;
    out.writeUInt16BE(length, 1);
    return out;
  }
  const out = Buffer.alloc(5);
  out[0] = (major << 5) | 26;
  out.writeUInt32BE(length, 1);
  return out;
}

/** The CBOR subset attestation objects and COSE keys use (RFC 8949): integers, strings, bytes, arrays, maps. */
export function cbor(value: Cbor): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value]);
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)]);
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([key, item]) => [cbor(key), cbor(item)])]);
}

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest();

export const FLAGS = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40 } as const;

interface Ceremony {
  /** The origin the "browser" reports in clientDataJSON. */
  origin?: string;
  /** The RP ID whose hash goes into authenticatorData. */
  rpId?: string;
  /** authenticatorData flags; default UP and UV (and AT for a registration). */
  flags?: number;
  /** The signature counter to report (default: one more than the last, starting at 1). */
  counter?: number;
  /** clientDataJSON's type (default webauthn.create / webauthn.get). */
  type?: string;
  /** Replaces the challenge signed (default: the options' challenge). */
  challenge?: string;
}

export interface CreationOptions {
  challenge: string;
  rp: { id?: string; name: string };
  user: { id: string; name: string; displayName: string };
}

export interface RequestOptions {
  challenge: string;
  rpId?: string;
}

export class SoftAuthenticator {
  readonly credentialId = randomBytes(16);
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  counter = 0;
  userHandle: string | undefined;

  constructor(
    readonly origin: string,
    readonly rpId: string,
  ) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }

  get id(): string {
    return b64url(this.credentialId);
  }

  /** The COSE_Key of the public key (EC2, ES256, P-256). */
  coseKey(): Buffer {
    const jwk = this.publicKey.export({ format: 'jwk' });
    return cbor(
      new Map<number, Cbor>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x as string, 'base64url')],
        [-3, Buffer.from(jwk.y as string, 'base64url')],
      ]),
    );
  }

  #clientData(type: string, challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }), 'utf8');
  }

  #authData(rpId: string, flags: number, counter: number, attested?: Buffer): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter);
    return Buffer.concat([sha256(rpId), Buffer.from([flags]), count, ...(attested ? [attested] : [])]);
  }

  /** navigator.credentials.create(), in RegistrationResponseJSON form. */
  create(options: CreationOptions, ceremony: Ceremony = {}) {
    this.userHandle = options.user.id;
    const clientData = this.#clientData(
      ceremony.type ?? 'webauthn.create',
      ceremony.challenge ?? options.challenge,
      ceremony.origin ?? this.origin,
    );
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.credentialId.length);
    const attested = Buffer.concat([Buffer.alloc(16), idLength, this.credentialId, this.coseKey()]);
    const counter = ceremony.counter ?? 0;
    const authData = this.#authData(
      ceremony.rpId ?? this.rpId,
      ceremony.flags ?? FLAGS.UP | FLAGS.UV | FLAGS.AT,
      counter,
      attested,
    );
    this.counter = counter;
    const attestationObject = cbor({ fmt: 'none', attStmt: {}, authData });
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(clientData),
        attestationObject: b64url(attestationObject),
        transports: ['internal'],
      },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
    };
  }

  /** navigator.credentials.get(), in AuthenticationResponseJSON form. */
  get(options: RequestOptions, ceremony: Ceremony & { userHandle?: string | null; badSignature?: boolean } = {}) {
    const clientData = this.#clientData(
      ceremony.type ?? 'webauthn.get',
      ceremony.challenge ?? options.challenge,
      ceremony.origin ?? this.origin,
    );
    const counter = ceremony.counter ?? this.counter + 1;
    this.counter = Math.max(this.counter, counter);
    const authData = this.#authData(ceremony.rpId ?? this.rpId, ceremony.flags ?? FLAGS.UP | FLAGS.UV, counter);
    let signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), this.privateKey);
    if (ceremony.badSignature) {
      signature = sign('sha256', Buffer.concat([authData, sha256(Buffer.from('something else'))]), this.privateKey);
    }
    const userHandle = ceremony.userHandle === undefined ? this.userHandle : ceremony.userHandle;
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(clientData),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(userHandle ? { userHandle } : {}),
      },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
    };
  }
}
