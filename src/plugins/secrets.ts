// Decorates `secrets`: keys derived from SESSION_SECRET (or KEYS_DIR/session.secret), shared by every instance.
// They bind CSRF values to their session and derive a refresh token's one child inside the grace interval.
import { hkdfSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import fp from 'fastify-plugin';

export interface Secrets {
  /** HMAC key for CSRF values. */
  csrf: Buffer;
  /** HMAC key deriving the child of a refresh token. */
  refreshChild: Buffer;
  /** HMAC key of stored recovery codes: a copy of the table alone cannot be searched offline. */
  recoveryCodes: Buffer;
  /** AES-256-GCM key sealing second-factor secrets at rest (DATA_ENCRYPTION_KEY). */
  dataEncryption: Buffer;
}

declare module 'fastify' {
  interface FastifyInstance {
    secrets: Secrets;
  }
}

export const SESSION_SECRET_FILE = 'session.secret';
export const DATA_ENCRYPTION_KEY_FILE = 'data-encryption.key';
const MIN_SECRET_BYTES = 32;

/** The variable's value, else its file in KEYS_DIR; outside production a missing file is generated (0600). */
async function loadSecret(options: {
  variable: string;
  fileName: string;
  fromEnv: string | undefined;
  keysDir: string;
  generate: boolean;
  /** Throws when the file's content is not acceptable. */
  check: (secret: string, file: string) => void;
  onGenerated: (file: string) => void;
}): Promise<string> {
  if (options.fromEnv) return options.fromEnv;
  const file = path.join(options.keysDir, options.fileName);
  try {
    const secret = (await readFile(file, 'utf8')).trim();
    options.check(secret, file);
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (!options.generate) {
      throw new Error(`${options.variable} is not set and ${file} does not exist; provide one of them`);
    }
  }
  const secret = randomBytes(32).toString('base64url');
  await mkdir(options.keysDir, { recursive: true });
  // `wx`: two instances booting at once on one folder must not overwrite each other's secret.
  const written = await writeFile(file, `${secret}\n`, { mode: 0o600, flag: 'wx' }).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      return false;
    },
  );
  if (written) options.onGenerated(file);
  return (await readFile(file, 'utf8')).trim();
}

const derive = (secret: string, purpose: string) =>
  Buffer.from(hkdfSync('sha256', secret, 'auth-service', purpose, 32));

export default fp(
  async (app) => {
    const { sessionSecret, dataEncryptionKey, keysDir, isProduction } = app.config;
    const secret = await loadSecret({
      variable: 'SESSION_SECRET',
      fileName: SESSION_SECRET_FILE,
      fromEnv: sessionSecret,
      keysDir,
      // Production never invents a secret: instances would disagree on it.
      generate: !isProduction,
      check: (value, file) => {
        if (Buffer.byteLength(value) < MIN_SECRET_BYTES) {
          throw new Error(`${file} holds fewer than ${MIN_SECRET_BYTES} bytes; write a longer secret`);
        }
      },
      onGenerated: (file) =>
        app.log.warn({ file }, '*** No SESSION_SECRET: generated a development secret. Set one for production. ***'),
    });
    const encryptionKey = await loadSecret({
      variable: 'DATA_ENCRYPTION_KEY',
      fileName: DATA_ENCRYPTION_KEY_FILE,
      fromEnv: dataEncryptionKey,
      keysDir,
      // A generated key in production would seal secrets no other instance can open.
      generate: !isProduction,
      check: (value, file) => {
        if (Buffer.from(value, 'base64url').length !== 32) throw new Error(`${file} must hold 32 bytes, base64url`);
      },
      onGenerated: (file) =>
        app.log.warn(
          { file },
          '*** No DATA_ENCRYPTION_KEY: generated a development key for TOTP secrets. Set one for production. ***',
        ),
    });
    app.decorate('secrets', {
      csrf: derive(secret, 'csrf'),
      refreshChild: derive(secret, 'refresh-child'),
      recoveryCodes: derive(secret, 'recovery-codes'),
      dataEncryption: Buffer.from(encryptionKey, 'base64url'),
    });
  },
  { name: 'secrets', dependencies: ['config'] },
);
