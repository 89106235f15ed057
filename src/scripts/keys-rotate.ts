// `npm run keys:rotate [-- --alg RS256|ES256|EdDSA]` (alias keys:generate): adds a signing key (0600) to KEYS_DIR,
// published by every instance at its next reload and signing from now + KEY_ACTIVATION_DELAY.
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
    return fail(`keys:rotate: ${(error as Error).message}. Usage: npm run keys:rotate -- [--alg RS256|ES256|EdDSA]`);
  }
  if (alg !== undefined && !algorithms.includes(alg as JwtAlgorithm)) {
    return fail(`keys:rotate: --alg ${JSON.stringify(alg)}: expected one of ${algorithms.join(', ')}`);
  }

  const config = loadConfigOrExit();
  const algorithm = (alg as JwtAlgorithm | undefined) ?? config.jwtAlgorithm;

  const { keyActivationDelay: delay, keysReloadInterval: reloadInterval, jwksMaxAge } = config;
  const activatesAt = Date.now() + delay * 1000;
  let key: Awaited<ReturnType<typeof writeNewKey>>;
  try {
    key = await writeNewKey(config.keysDir, algorithm, activatesAt);
  } catch (error) {
    return fail(`keys:rotate: cannot write a key to ${config.keysDir}: ${(error as Error).message}`);
  }

  const lines = [
    `Generated ${algorithm} key`,
    `  kid:  ${key.kid}`,
    `  file: ${key.file} (mode 0600; never commit it)`,
    `  starts signing at ${new Date(activatesAt).toISOString()} (now + KEY_ACTIVATION_DELAY, ${delay} s),`,
    `  as recorded in ${path.join(config.keysDir, MANIFEST_FILE)}`,
    '',
  ];
  if (reloadInterval > 0) {
    lines.push(
      `Every instance reading this KEYS_DIR publishes the key in /.well-known/jwks.json within KEYS_RELOAD_INTERVAL`,
      `(${reloadInterval} s) and switches to it at that time by itself, with no restart. Instances with a KEYS_DIR of`,
      `their own need this file and ${MANIFEST_FILE} copied there before then (the activation time is read from`,
      `${MANIFEST_FILE}, never from file times). Once the previous key has been superseded for ACCESS_TOKEN_TTL +`,
      'CLOCK_TOLERANCE, `npm run keys:retire` removes it.',
    );
  } else {
    lines.push(
      'KEYS_RELOAD_INTERVAL is 0: restart every instance (with this file and keys.json in its KEYS_DIR) before then,',
      'so /.well-known/jwks.json publishes the key; each switches to it at that time by itself.',
    );
  }
  // A verifier may hold a JWKS for max-age, fetched just before an instance reloaded: it sees the key only after both.
  const needed = jwksMaxAge + reloadInterval;
  if (delay < needed) {
    lines.push(
      '',
      `Warning: KEY_ACTIVATION_DELAY (${delay} s) is shorter than JWKS_MAX_AGE + KEYS_RELOAD_INTERVAL (${needed} s):`,
      'a verifier with a cached JWKS may meet a token of this key before it has fetched the key (most refetch on an',
      'unknown kid, but not all).',
    );
  }
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
