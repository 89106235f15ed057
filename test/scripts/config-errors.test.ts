// Every entry point (server and scripts) loads the configuration the same way: a bad variable prints one line
// naming it, and the process exits 1 before opening anything.
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import t from 'tap';
import { repoRoot } from '../helpers/server-process.js';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', file, ...args],
      {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const bad = { PORT: 'abc', DATABASE_URL: 'mysql://user:hunter2@nowhere/db' };
const entryPoints: [string, string[], string][] = [
  ['src/server.ts', [], ''],
  ['src/scripts/migrate.ts', [], ''],
  ['src/scripts/keys-generate.ts', [], ''],
  ['src/scripts/prune.ts', [], ''],
  ['src/scripts/create-admin.ts', ['--email', 'config@example.com'], 'create-admin: '],
];

t.test('a bad variable: exit 1, one line per problem, the secret never echoed', async (t) => {
  const results = await Promise.all(entryPoints.map(([file, args]) => run(file, args, bad)));
  entryPoints.forEach(([file, , prefix], index) => {
    const result = results[index] as Outcome;
    t.equal(result.code, 1, `${file}: exit 1`);
    t.equal(
      result.stderr,
      `${prefix}Invalid configuration:\n  PORT="abc": expected a whole number 0..65535\n  DATABASE_URL: expected a postgres:// URL\n`,
      `${file}: the configuration's message, and nothing else`,
    );
    t.notMatch(result.stderr, /hunter2/, `${file}: the secret is not echoed`);
    t.equal(result.stdout, '', `${file}: nothing on stdout`);
  });
});

const production = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://db.invalid/auth',
  REDIS_URL: 'redis://cache.invalid',
};

t.test(
  'production and SMTP_URL: unset or malformed, the server refuses to start, naming it, never echoing it',
  async (t) => {
    const [missing, malformed] = await Promise.all([
      run('src/server.ts', [], production),
      run('src/server.ts', [], { ...production, SMTP_URL: 'http://mailer:hunter2@smtp.example.com:587' }),
    ]);
    t.equal(missing.code, 1, 'unset: exit 1');
    t.equal(
      missing.stderr,
      'Invalid configuration:\n  SMTP_URL: required when NODE_ENV=production\n',
      'unset: one line naming SMTP_URL, and nothing else',
    );
    t.equal(missing.stdout, '', 'unset: nothing on stdout, it never booted');

    t.equal(malformed.code, 1, 'malformed: exit 1');
    t.equal(
      malformed.stderr,
      'Invalid configuration:\n  SMTP_URL: expected an smtp:// or smtps:// URL\n',
      'malformed: named, with what is expected',
    );
    t.notMatch(`${malformed.stdout}${malformed.stderr}`, /hunter2|mailer/, 'malformed: the credentials are not echoed');
  },
);
