// `npm run keys:generate [-- --alg RS256|ES256|EdDSA]`: writes a new signing key (0600) to KEYS_DIR for rotation.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type JwtAlgorithm, MANIFEST_FILE, writeNewKey } from '../keys/key-ring.js';
import { loadConfigOrExit } from '../lib/cli.js';

const algorithms: readonly JwtAlgorithm[] = ['RS256', 'ES256', 'EdDSA'];

function fail(message: string): number {
  process.stderr.write(`${message}\n`);
  return 1;
}

async function main(): Promise<number> {
  let alg: string | undefined;
  try {
    ({
      values: { alg },
    } = parseArgs({ options: { alg: { type: 'string' } }, strict: true }));
  } catch (error) {
    return fail(
      `keys:generate: ${(error as Error).message}. Usage: npm run keys:generate -- [--alg RS256|ES256|EdDSA]`,
    );
  }
  if (alg !== undefined && !algorithms.includes(alg as JwtAlgorithm)) {
    return fail(`keys:generate: --alg ${JSON.stringify(alg)}: expected one of ${algorithms.join(', ')}`);
  }

  const config = loadConfigOrExit();
  const algorithm = (alg as JwtAlgorithm | undefined) ?? config.jwtAlgorithm;

  const delay = config.keyActivationDelay;
  const activatesAt = Date.now() + delay * 1000;
  let key: Awaited<ReturnType<typeof writeNewKey>>;
  try {
    key = await writeNewKey(config.keysDir, algorithm, activatesAt);
  } catch (error) {
    return fail(`keys:generate: cannot write a key to ${config.keysDir}: ${(error as Error).message}`);
  }

  const lines = [
    `Generated ${algorithm} key`,
    `  kid:  ${key.kid}`,
    `  file: ${key.file} (mode 0600; never commit it)`,
    `  starts signing at ${new Date(activatesAt).toISOString()} (now + KEY_ACTIVATION_DELAY, ${delay} s),`,
    `  as recorded in ${path.join(config.keysDir, MANIFEST_FILE)}`,
    '',
    'Restart every instance (with this file and keys.json in its KEYS_DIR) before then, so /.well-known/jwks.json',
    'publishes the key; each instance switches to it at that time by itself, with no further restart, so every',
    'cached JWKS has seen the new key before a token signed by it arrives. Copy keys.json along with the keys:',
    'the activation time is read from it, never from file times.',
  ];
  if (algorithm !== config.jwtAlgorithm) {
    lines.push(
      '',
      `Note: JWT_ALG is ${config.jwtAlgorithm}; instances load only keys of JWT_ALG, so this ${algorithm} key is`,
      `ignored until JWT_ALG=${algorithm}.`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

process.exit(await main());
