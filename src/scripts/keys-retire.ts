// `npm run keys:retire [-- --kid <kid>]... [--dry-run]`: deletes from KEYS_DIR the keys no live token needs (each
// superseded for longer than ACCESS_TOKEN_TTL + CLOCK_TOLERANCE), saying which and why; refuses any other.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type KeyRing, loadKeyRing, removeKey } from '../keys/key-ring.js';
import { type RetirementVerdict, retirementVerdicts } from '../keys/retirement.js';
import { loadConfigOrExit } from '../lib/cli.js';

const usage = 'Usage: npm run keys:retire -- [--kid <kid>]... [--dry-run]';

function fail(message: string): number {
  process.stderr.write(`${message}\n`);
  return 1;
}

const iso = (ms: number) => (ms === 0 ? 'always' : new Date(ms).toISOString());

function describe(verdict: RetirementVerdict): string {
  const name = `${verdict.key.kid} (${path.basename(verdict.key.file)})`;
  if (verdict.retirable) {
    return `${name}: superseded at ${iso(verdict.supersededAt)}; its last tokens expired by ${iso(verdict.tokensExpiredAt)}`;
  }
  if (verdict.reason === 'active') return `${name}: the active signing key`;
  if (verdict.reason === 'pending') return `${name}: not signing yet (from ${iso(verdict.key.activatesAt)})`;
  return `${name}: tokens it signed may still be accepted until ${iso(verdict.retirableAt ?? 0)}; retire it after then`;
}

async function main(): Promise<number> {
  let kids: string[];
  let dryRun: boolean;
  try {
    const { values } = parseArgs({
      options: { kid: { type: 'string', multiple: true }, 'dry-run': { type: 'boolean' } },
      strict: true,
    });
    kids = values.kid ?? [];
    dryRun = values['dry-run'] ?? false;
  } catch (error) {
    return fail(`keys:retire: ${(error as Error).message}. ${usage}`);
  }

  const config = loadConfigOrExit();
  const now = Date.now();
  let ring: KeyRing;
  try {
    ring = await loadKeyRing({ keysDir: config.keysDir, algorithm: config.jwtAlgorithm, generateIfEmpty: false, now });
  } catch (error) {
    return fail(`keys:retire: cannot read the keys of ${config.keysDir}: ${(error as Error).message}`);
  }
  const lifetimeMs = (config.accessTokenTtl + config.clockTolerance) * 1000;
  const verdicts = retirementVerdicts(ring, now, lifetimeMs);
  const rule = `superseded for more than ACCESS_TOKEN_TTL + CLOCK_TOLERANCE (${config.accessTokenTtl} + ${config.clockTolerance} s)`;

  // Named keys: all of them retirable, or none is touched.
  const unknown = kids.filter((kid) => !ring.find(kid));
  if (unknown.length > 0) {
    return fail(`keys:retire: no ${config.jwtAlgorithm} key with kid ${unknown.join(', ')} in ${config.keysDir}`);
  }
  const named = kids.length > 0 ? verdicts.filter((verdict) => kids.includes(verdict.key.kid)) : verdicts;
  const refused = kids.length > 0 ? named.filter((verdict) => !verdict.retirable) : [];
  if (refused.length > 0) {
    return fail(
      [
        `keys:retire: refused; nothing removed. A key can go once ${rule}:`,
        ...refused.map((v) => `  ${describe(v)}`),
      ].join('\n'),
    );
  }

  const retiring = named.filter((verdict) => verdict.retirable);
  const kept = verdicts.filter((verdict) => !(retiring as RetirementVerdict[]).includes(verdict));
  const lines: string[] = [];
  for (const verdict of retiring) {
    if (!dryRun) {
      try {
        await removeKey(config.keysDir, verdict.key);
      } catch (error) {
        return fail(`keys:retire: cannot remove ${verdict.key.file}: ${(error as Error).message}`);
      }
    }
    lines.push(`${dryRun ? 'Would retire' : 'Retired'} ${describe(verdict)}`);
  }
  if (retiring.length === 0) lines.push(`Nothing to retire: no key has been ${rule}.`);
  for (const verdict of kept) lines.push(`Kept ${describe(verdict)}`);
  if (retiring.length > 0 && !dryRun) {
    lines.push(
      '',
      config.keysReloadInterval > 0
        ? `Instances reading this KEYS_DIR stop publishing the retired keys within KEYS_RELOAD_INTERVAL (${config.keysReloadInterval} s).`
        : 'KEYS_RELOAD_INTERVAL is 0: instances publish the retired keys until they restart.',
      'Instances with a KEYS_DIR of their own: remove the same files and keys.json entries there (or copy this folder).',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

process.exit(await main());
