// `npm run keys:generate [-- --alg RS256|ES256|EdDSA]`: writes a new signing key (0600) to KEYS_DIR for rotation.
import { parseArgs } from 'node:util';
import { type JwtAlgorithm, writeNewKey } from '../keys/key-ring.js';
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

  let key: Awaited<ReturnType<typeof writeNewKey>>;
  try {
    key = await writeNewKey(config.keysDir, algorithm);
  } catch (error) {
    return fail(`keys:generate: cannot write a key to ${config.keysDir}: ${(error as Error).message}`);
  }

  const delay = config.keyActivationDelay;
  const signsFrom = new Date(key.createdAt + delay * 1000).toISOString();
  const lines = [
    `Generated ${algorithm} key`,
    `  kid:  ${key.kid}`,
    `  file: ${key.file} (mode 0600; never commit it)`,
    '',
    'Restart every instance (with this file in its KEYS_DIR) so /.well-known/jwks.json publishes the key.',
    `It becomes the signing key KEY_ACTIVATION_DELAY (${delay} s) after the`,
    `file was written, from ${signsFrom}, with no further restart; until then instances keep signing with the`,
    'current key, so every cached JWKS has seen the new key before a token signed by it arrives (file mtime).',
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
