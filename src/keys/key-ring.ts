// Signing keys from KEYS_DIR: kid = RFC 7638 thumbprint; keys.json records when each starts signing (rotation).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
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
  /**
   * When the key starts signing (epoch ms), as recorded in `keys.json`; 0 for a key with no recorded time, which
   * counts as active since ever (the oldest). Never a file time: copying a folder or mounting it as a secret
   * changes those.
   */
  activatesAt: number;
  file: string;
}

export class KeyRing {
  readonly #byKid: Map<string, SigningKey>;

  /** `keys` by activation time, earliest first; `now` is read at every signature, so a key starts on its own. */
  constructor(
    readonly keys: readonly SigningKey[],
    private readonly now: () => number,
  ) {
    this.#byKid = new Map(keys.map((key) => [key.kid, key]));
  }

  /**
   * The signing key: the one activated last among those whose activation time has passed (every key is published
   * from load, and keys:rotate sets the time KEY_ACTIVATION_DELAY ahead, so caches hold a key before it signs);
   * if none has activated yet, the earliest.
   */
  get active(): SigningKey {
    const now = this.now();
    return this.keys.filter((key) => key.activatesAt <= now).at(-1) ?? (this.keys[0] as SigningKey);
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

export function toSigningKey(privateKeyPem: string, file: string, activatesAt: number): SigningKey {
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
    activatesAt,
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

/** The manifest in KEYS_DIR recording when each key starts signing. */
export const MANIFEST_FILE = 'keys.json';

interface ManifestEntry {
  kid: string;
  file?: string;
  /** ISO 8601. */
  activatesAt: string;
}

/** The manifest's entries as written (empty when there is none); a malformed one is a KeyError. */
async function readManifest(keysDir: string): Promise<ManifestEntry[]> {
  const file = path.join(keysDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const shape = `expected {"keys": [{"kid": "...", "file": "<kid>.pem", "activatesAt": "<ISO 8601 time>"}]}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new KeyError(`${file}: not JSON (${(error as Error).message}); ${shape}`);
  }
  const entries = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(entries)) throw new KeyError(`${file}: ${shape}`);
  for (const entry of entries as Partial<ManifestEntry>[]) {
    const valid =
      typeof entry?.kid === 'string' &&
      typeof entry.activatesAt === 'string' &&
      !Number.isNaN(Date.parse(entry.activatesAt));
    if (!valid) throw new KeyError(`${file}: bad entry ${JSON.stringify(entry)}; ${shape}`);
  }
  return entries as ManifestEntry[];
}

/** Writes the manifest atomically (aside, then renamed), so a reader, a reloading instance included, never sees half. */
async function writeManifest(keysDir: string, entries: ManifestEntry[]): Promise<void> {
  const file = path.join(keysDir, MANIFEST_FILE);
  await writeFile(`${file}.tmp`, `${JSON.stringify({ keys: entries }, null, 2)}\n`, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
}

/** Adds (or replaces) a key's entry. */
async function recordActivation(keysDir: string, key: SigningKey): Promise<void> {
  const entries = (await readManifest(keysDir)).filter((entry) => entry.kid !== key.kid);
  entries.push({ kid: key.kid, file: path.basename(key.file), activatesAt: new Date(key.activatesAt).toISOString() });
  await writeManifest(keysDir, entries);
}

/**
 * Writes a new private key (mode 0600) named by its kid, and records in keys.json that it signs from
 * `activatesAt` (epoch ms); returns it. The entry is written before the file, and the file aside then linked into
 * place: an instance reloading in between sees either no key (an entry without a file is ignored) or the whole key
 * with its time, never a key without its time (which would count as active since ever).
 */
export async function writeNewKey(keysDir: string, alg: JwtAlgorithm, activatesAt: number): Promise<SigningKey> {
  await mkdir(keysDir, { recursive: true });
  // Refuse a malformed manifest before writing anything.
  await readManifest(keysDir);
  const pem = generatePrivateKeyPem(alg);
  const probe = toSigningKey(pem, '', activatesAt);
  const file = path.join(keysDir, `${probe.kid}.pem`);
  const key = { ...probe, file };
  await recordActivation(keysDir, key);
  // Not *.pem, so never loaded half written; link (unlike rename) refuses to replace an existing file.
  const aside = path.join(keysDir, `.${probe.kid}.pem.tmp`);
  await writeFile(aside, pem, { mode: 0o600, flag: 'wx' });
  try {
    await link(aside, file);
  } finally {
    await unlink(aside);
  }
  return key;
}

/**
 * Deletes a key's file, then its keys.json entry: in that order an instance reloading in between sees an entry
 * without a file (ignored), never the file without its time.
 */
export async function removeKey(keysDir: string, key: SigningKey): Promise<void> {
  await unlink(key.file);
  const entries = await readManifest(keysDir);
  const kept = entries.filter((entry) => entry.kid !== key.kid);
  if (kept.length !== entries.length) await writeManifest(keysDir, kept);
}

export interface LoadKeysOptions {
  keysDir: string;
  algorithm: JwtAlgorithm;
  /** Outside production an empty folder gets a fresh key. */
  generateIfEmpty: boolean;
  now: number;
  /** The clock the ring reads when choosing the signing key; by default fixed at `now`. */
  clock?: () => number;
  onGenerated?: (key: SigningKey) => void;
}

/**
 * Loads every `*.pem` of the configured algorithm with its activation time from keys.json (an empty folder gets a
 * key, active at once, when allowed). A key missing from keys.json counts as active since ever; two such keys
 * would make the choice a guess, so that folder is refused.
 */
export async function loadKeyRing(options: LoadKeysOptions): Promise<KeyRing> {
  const { keysDir, algorithm } = options;
  const files = await readdir(keysDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const activation = new Map((await readManifest(keysDir)).map((entry) => [entry.kid, Date.parse(entry.activatesAt)]));
  const keys: SigningKey[] = [];
  for (const name of files.filter((file) => file.endsWith('.pem')).sort()) {
    const file = path.join(keysDir, name);
    const key = toSigningKey(await readFile(file, 'utf8'), file, 0);
    if (key.alg === algorithm) keys.push({ ...key, activatesAt: activation.get(key.kid) ?? 0 });
  }
  const unrecorded = keys.filter((key) => !activation.has(key.kid));
  if (unrecorded.length > 1) {
    throw new KeyError(
      `${keysDir}: ${unrecorded.length} keys have no activation time in ${MANIFEST_FILE} ` +
        `(${unrecorded.map((key) => path.basename(key.file)).join(', ')}), so which one signs would be a guess. ` +
        `Record each one's "activatesAt" there (see keys/README.md), or remove the keys no longer used.`,
    );
  }
  if (keys.length === 0) {
    if (!options.generateIfEmpty) {
      throw new KeyError(`no ${algorithm} private key in ${keysDir}; create one with \`npm run keys:rotate\``);
    }
    // The only key: nothing else could sign, so it is active at once.
    const key = await writeNewKey(keysDir, algorithm, options.now);
    options.onGenerated?.(key);
    keys.push(key);
  }
  // Ties (equal recorded times) are settled by kid, so the choice never depends on the folder's listing order.
  keys.sort((a, b) => a.activatesAt - b.activatesAt || (a.kid < b.kid ? -1 : 1));
  return new KeyRing(keys, options.clock ?? (() => options.now));
}
