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
}

declare module 'fastify' {
  interface FastifyInstance {
    secrets: Secrets;
  }
}

export const SESSION_SECRET_FILE = 'session.secret';
const MIN_SECRET_BYTES = 32;

/** SESSION_SECRET, else the file in KEYS_DIR; outside production a missing file is generated (0600). */
async function loadSessionSecret(options: {
  fromEnv: string | undefined;
  keysDir: string;
  generate: boolean;
  onGenerated: (file: string) => void;
}): Promise<string> {
  if (options.fromEnv) return options.fromEnv;
  const file = path.join(options.keysDir, SESSION_SECRET_FILE);
  try {
    const secret = (await readFile(file, 'utf8')).trim();
    if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
      throw new Error(`${file} holds fewer than ${MIN_SECRET_BYTES} bytes; write a longer secret`);
    }
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (!options.generate) {
      throw new Error(`SESSION_SECRET is not set and ${file} does not exist; provide one of them`);
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
    const { sessionSecret, keysDir, isProduction } = app.config;
    const secret = await loadSessionSecret({
      fromEnv: sessionSecret,
      keysDir,
      // Production never invents a secret: instances would disagree on it.
      generate: !isProduction,
      onGenerated: (file) =>
        app.log.warn({ file }, '*** No SESSION_SECRET: generated a development secret. Set one for production. ***'),
    });
    app.decorate('secrets', { csrf: derive(secret, 'csrf'), refreshChild: derive(secret, 'refresh-child') });
  },
  { name: 'secrets', dependencies: ['config'] },
);
