// Signing keys from KEYS_DIR: kid = RFC 7638 thumbprint, a new key published before it signs (rotation).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

export type JwtAlgorithm = 'RS256' | 'ES256' | 'EdDSA';

/** The public members of a signing key, as published in the JWKS. */
export interface PublicJwk {
  kty: string;
  kid: string;
  use: 'sig';
  alg: JwtAlgorithm;
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

export interface SigningKey {
  kid: string;
  alg: JwtAlgorithm;
  privateKeyPem: string;
  publicKeyPem: string;
  publicJwk: PublicJwk;
  /** When the key file was written (epoch ms): it signs only once published for `activationDelay`. */
  createdAt: number;
  file: string;
}

export class KeyRing {
  readonly #byKid: Map<string, SigningKey>;

  /** `keys` oldest first; `now` is read at every signature, so a published key starts signing on its own. */
  constructor(
    readonly keys: readonly SigningKey[],
    private readonly activationDelayMs: number,
    private readonly now: () => number,
  ) {
    this.#byKid = new Map(keys.map((key) => [key.kid, key]));
  }

  /**
   * The signing key: the newest one published for at least the activation delay (so every cached JWKS already
   * holds it); if none is that old, the oldest one.
   */
  get active(): SigningKey {
    const activeFrom = this.now() - this.activationDelayMs;
    return this.keys.filter((key) => key.createdAt <= activeFrom).at(-1) ?? (this.keys[0] as SigningKey);
  }

  /** A verification key by kid; only keys of our own set, never one named by the token. */
  find(kid: unknown): SigningKey | undefined {
    return typeof kid === 'string' ? this.#byKid.get(kid) : undefined;
  }

  jwks(): { keys: PublicJwk[] } {
    return { keys: this.keys.map((key) => key.publicJwk) };
  }
}

export class KeyError extends Error {
  override name = 'KeyError';
}

const RSA_MIN_BITS = 2048;

function algorithmOf(key: KeyObject): JwtAlgorithm | undefined {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  return undefined;
}

/** RFC 7638: SHA-256 over the required members, in lexicographic order, base64url. */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  const required: Record<string, string[]> = {
    RSA: ['e', 'kty', 'n'],
    EC: ['crv', 'kty', 'x', 'y'],
    OKP: ['crv', 'kty', 'x'],
  };
  const members = required[String(jwk.kty)];
  if (!members) throw new KeyError(`unsupported key type ${String(jwk.kty)}`);
  const canonical = `{${members.map((member) => `${JSON.stringify(member)}:${JSON.stringify(jwk[member])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

export function toSigningKey(privateKeyPem: string, file: string, createdAt: number): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(privateKeyPem);
  } catch (error) {
    throw new KeyError(`${file}: not a PEM private key (${(error as Error).message})`);
  }
  const alg = algorithmOf(privateKey);
  if (!alg) throw new KeyError(`${file}: unsupported key type; use RSA, EC P-256 or Ed25519`);
  const bits = privateKey.asymmetricKeyDetails?.modulusLength;
  if (alg === 'RS256' && (bits ?? 0) < RSA_MIN_BITS) {
    throw new KeyError(`${file}: RSA key of ${bits} bits; at least ${RSA_MIN_BITS} required`);
  }
  const publicKey = createPublicKey(privateKey);
  // Export from the public key object: only public members can come out.
  const { kty, n, e, crv, x, y } = publicKey.export({ format: 'jwk' });
  const members = Object.fromEntries(
    Object.entries({ kty, n, e, crv, x, y }).filter(([, value]) => value !== undefined),
  );
  const kid = jwkThumbprint(members);
  return {
    kid,
    alg,
    privateKeyPem,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicJwk: { ...(members as { kty: string }), kid, use: 'sig', alg },
    createdAt,
    file,
  };
}

export function generatePrivateKeyPem(alg: JwtAlgorithm): string {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Writes a new private key (mode 0600) named by its kid; returns it. */
export async function writeNewKey(keysDir: string, alg: JwtAlgorithm, now = Date.now()): Promise<SigningKey> {
  await mkdir(keysDir, { recursive: true });
  const pem = generatePrivateKeyPem(alg);
  const probe = toSigningKey(pem, '', now);
  const file = path.join(keysDir, `${probe.kid}.pem`);
  await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  return { ...probe, file };
}

export interface LoadKeysOptions {
  keysDir: string;
  algorithm: JwtAlgorithm;
  /** Seconds a key must have been published before it signs. */
  activationDelay: number;
  /** Outside production an empty folder gets a fresh key. */
  generateIfEmpty: boolean;
  now: number;
  /** The clock the ring reads when choosing the signing key; by default fixed at `now`. */
  clock?: () => number;
  onGenerated?: (key: SigningKey) => void;
}

/** Loads every `*.pem` of the configured algorithm (an empty folder gets a key when allowed). */
export async function loadKeyRing(options: LoadKeysOptions): Promise<KeyRing> {
  const { keysDir, algorithm } = options;
  const files = await readdir(keysDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const keys: SigningKey[] = [];
  for (const name of files.filter((file) => file.endsWith('.pem')).sort()) {
    const file = path.join(keysDir, name);
    const [pem, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    const key = toSigningKey(pem, file, info.mtimeMs);
    if (key.alg === algorithm) keys.push(key);
  }
  if (keys.length === 0) {
    if (!options.generateIfEmpty) {
      throw new KeyError(`no ${algorithm} private key in ${keysDir}; create one with \`npm run keys:generate\``);
    }
    const key = await writeNewKey(keysDir, algorithm, options.now);
    options.onGenerated?.(key);
    keys.push(key);
  }
  keys.sort((a, b) => a.createdAt - b.createdAt);
  return new KeyRing(keys, options.activationDelay * 1000, options.clock ?? (() => options.now));
}
