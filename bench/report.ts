// The results of a run: their JSON shape, the Markdown tables printed at the end, and BENCHMARKS.md.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EmbeddedMemory, SeedCounts } from './interfaces.js';
import type { Machine } from './machine.js';
import { USAGE } from './options.js';
import type { Check, SideSummary } from './stats.js';

export interface ScenarioResult {
  id: string;
  title: string;
  connections: string;
  a: SideSummary;
  b: SideSummary;
  checks: Check[];
  /** The service's VmHWM once this scenario ended, MiB: which scenario raised the peak. */
  servicePeakRssMb: number | null;
}

export interface ProcessMemoryRow {
  name: string;
  /** VmRSS once it announced it was listening, MiB. */
  bootRssMb: number | null;
  /** VmHWM at the end of its run, MiB. */
  peakRssMb: number | null;
}

export interface SeededScenario {
  id: string;
  title: string;
  /** The empty-database run's figures, minutes before the seed. */
  empty: SideSummary['median'];
  /** A service on an empty database, in rounds alternating with the seeded one: the check's reference. */
  emptyAlongside: SideSummary;
  seeded: SideSummary;
  check: Check;
}

export type Skipped = { skipped: string };

export interface SeededResult {
  counts: SeedCounts;
  seedSeconds: number;
  rounds: number;
  scenarios: SeededScenario[];
  plans: { name: string; plan: string }[];
}

export interface Results {
  schema: 1;
  date: string;
  command: string;
  wallSeconds: number;
  machine: Machine;
  pinning: string;
  /** os.loadavg() (1, 5, 15 minutes) before the benchmark started anything, and at its end. */
  loadAverage: { start: number[]; end: number[] };
  settings: {
    seconds: number;
    warmupSeconds: number;
    rounds: number;
    connections: number;
    loginConnections: number;
    /** How every server process was run. */
    runtime: string;
    /** The service's environment, secrets and URLs left out. */
    serviceEnv: Record<string, string>;
  };
  scenarios: ScenarioResult[];
  memory: {
    processes: ProcessMemoryRow[];
    embedded: EmbeddedMemory | Skipped;
    /** The service's VmHWM after the setup (registrations and logins, argon2id four at a time), MiB. */
    servicePeakAfterSetupMb: number | null;
  };
  seeded: SeededResult | Skipped | null;
  /** Every check of the run, scenarios, memory and seeded database together. */
  checks: Check[];
}

const isSkipped = (value: object): value is Skipped => 'skipped' in value;

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** req/s: whole numbers, with a decimal below 100 (logins are tens per second). */
export const rate = (value: number) => (value < 100 ? oneDecimal : integer).format(value);
const ms = (value: number) => oneDecimal.format(value);
const mb = (value: number | null) => (value === null ? 'n/a' : `${integer.format(value)} MB`);

function formatValue(value: number, unit: Check['unit']): string {
  if (unit === 'ratio') return `${integer.format(value * 100)}%`;
  if (unit === 'times') return `${oneDecimal.format(value)}×`;
  if (unit === 'MB') return mb(value);
  return integer.format(value);
}

const formatTarget = (check: Check) =>
  `${check.target.op === '>=' ? '≥' : '≤'} ${formatValue(check.target.value, check.unit)}`;
const verdict = (check: Check) => (check.pass ? 'pass' : '**FAIL**');

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

// By id, not identity: the results may come back from JSON.
const scenarioOf = (check: Check, results: Results) =>
  results.scenarios.find((scenario) => scenario.checks.some((candidate) => candidate.id === check.id));

/** What a check compares, in figures, next to its value. */
function checkDetail(check: Check, results: Results): string {
  const scenario = scenarioOf(check, results);
  if (!scenario || check.unit !== 'ratio') return '';
  const { a, b } = scenario;
  const [numerator, denominator] = check.id === 'mixed.throughput' ? [b, a] : [a, b];
  return ` (${rate(numerator.median.rps)} / ${rate(denominator.median.rps)} req/s)`;
}

export function targetsTable(results: Results): string {
  const titleOf = (check: Check) => {
    const scenario = scenarioOf(check, results);
    return scenario ? `${scenario.title}: ${check.label}` : check.label;
  };
  return table(
    ['check', 'measured', 'target', 'result'],
    results.checks.map((check) => [
      titleOf(check),
      `${formatValue(check.value, check.unit)}${checkDetail(check, results)}`,
      formatTarget(check),
      verdict(check),
    ]),
  );
}

export function figuresTable(results: Results): string {
  const rows: string[][] = [];
  for (const scenario of results.scenarios) {
    for (const [index, side] of [scenario.a, scenario.b].entries()) {
      rows.push([
        index === 0 ? scenario.title : '',
        side.label,
        index === 0 || scenario.id === 'mixed' ? scenario.connections : String(side.rounds[0]?.connections ?? ''),
        rate(side.median.rps),
        ms(side.median.p50),
        ms(side.median.p99),
        integer.format(side.errors),
        side.rounds.map((round) => rate(round.rps)).join(' / '),
      ]);
    }
  }
  return table(['scenario', 'side', 'conn.', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'req/s per round'], rows);
}

export function memoryTable(results: Results): string {
  const rows = results.memory.processes.map((row) => [row.name, mb(row.bootRssMb), mb(row.peakRssMb)]);
  const { embedded } = results.memory;
  rows.push(
    isSkipped(embedded)
      ? ['service on embedded defaults', `not measured: ${embedded.skipped}`, '']
      : [
          `service on embedded defaults (${embedded.registrations} registrations)`,
          mb(embedded.bootRssMb),
          mb(embedded.peakRssMb),
        ],
  );
  if (!isSkipped(embedded) && embedded.initdb)
    rows.push([
      `initdb of a new data folder, its own process, once (${embedded.initdb.seconds} s)`,
      'n/a',
      mb(embedded.initdb.peakRssMb),
    ]);
  return table(['process', 'RSS after boot', 'peak RSS (VmHWM)'], rows);
}

export function seededTable(seeded: SeededResult): string {
  return table(
    [
      'scenario',
      'empty req/s, first run',
      'empty req/s, alongside',
      'seeded req/s',
      'seeded / empty alongside',
      'empty alongside p50 / p99 ms',
      'seeded p50 / p99 ms',
      'errors (both)',
    ],
    seeded.scenarios.map((scenario) => [
      scenario.title,
      rate(scenario.empty.rps),
      rate(scenario.emptyAlongside.median.rps),
      rate(scenario.seeded.median.rps),
      formatValue(scenario.check.value, 'ratio'),
      `${ms(scenario.emptyAlongside.median.p50)} / ${ms(scenario.emptyAlongside.median.p99)}`,
      `${ms(scenario.seeded.median.p50)} / ${ms(scenario.seeded.median.p99)}`,
      integer.format(scenario.seeded.errors + scenario.emptyAlongside.errors),
    ]),
  );
}

const count = (value: number) => integer.format(value);
const loads = (values: number[] | undefined) => (values ?? []).map((value) => value.toFixed(2)).join(' / ') || 'n/a';

function seededSection(results: Results): string {
  const { seeded } = results;
  if (seeded === null) {
    return 'Not run this time: `npm run bench -- --seed-rows` seeds the database after the empty-database run and reruns GET /users/me, login and refresh against it.';
  }
  if (isSkipped(seeded)) return `Not run: ${seeded.skipped}.`;
  const { counts } = seeded;
  const plans = seeded.plans.map((plan) => `### ${plan.name}\n\n\`\`\`text\n${plan.plan.trim()}\n\`\`\``).join('\n\n');
  return [
    `After the empty-database run, bench/seed.ts loaded ${count(counts.users)} users, ${count(counts.sessions)} sessions and ` +
      `${count(counts.refreshTokens)} refresh tokens with COPY into the same database (${oneDecimal.format(seeded.seedSeconds)} s, ` +
      `then ANALYZE), and the service was restarted on it. A second service on an empty database of its own (the ` +
      `same users) was started beside it, and each scenario ran ${seeded.rounds} round(s) on each, alternating, so ` +
      `both met the machine as the seed left it. Target: seeded at least 85% of the empty database alongside; the ` +
      `empty-database run's figure, from before the seed, is shown too.`,
    seededTable(seeded),
    '## EXPLAIN plans of the hot queries (seeded database)',
    plans || '(bench/seed.ts returned no plans)',
  ].join('\n\n');
}

export function markdownSummary(results: Results): string {
  return [
    `Medians of ${results.settings.rounds} round(s) of ${results.settings.seconds} s, Node ${results.machine.node}, ${results.pinning}.`,
    targetsTable(results),
    figuresTable(results),
    memoryTable(results),
    ...(results.seeded && !isSkipped(results.seeded) ? [seededTable(results.seeded)] : []),
  ].join('\n\n');
}

export function benchmarksMarkdown(results: Results): string {
  const { machine, settings } = results;
  const passed = results.checks.filter((check) => check.pass).length;
  return `# Benchmarks

Generated by \`npm run bench -- --write\` ([bench/run.ts](bench/run.ts)); do not edit by hand, rerun it. The same
figures are in [bench/results/benchmarks.json](bench/results/benchmarks.json).

${passed} of ${results.checks.length} targets met.

## Reproduce

\`\`\`sh
${results.command}
\`\`\`

Needs Postgres and Redis as for \`npm test\` (see README.md), Linux for the memory figures and \`taskset\` for
the pinning. It takes about 5 minutes with the defaults, 10 with \`--seed-rows\`; \`npm run bench\` without \`--write\`
prints the same tables and writes only bench/results/latest.json.

\`\`\`text
${USAGE}
\`\`\`

Measured ${results.date.slice(0, 10)} (${results.date}); the whole run took ${Math.round(results.wallSeconds)} s.

- CPU: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGb} GB of memory; ${machine.os}
- Node ${machine.node}; ${machine.postgres}; ${machine.redis}
- ${results.pinning}
- load average (1, 5, 15 min) before the run ${loads(results.loadAverage?.start)}, at its end ${loads(results.loadAverage?.end)};
  above ~0.5 before the run, other work shared the machine and the figures are noisier
- ${settings.rounds} round(s) of ${settings.seconds} s per side, after a ${settings.warmupSeconds} s warm-up run of each; ${settings.connections} connections (${settings.loginConnections} for login and for the storm)
- every server: \`${settings.runtime}\`; the service with ${Object.entries(settings.serviceEnv)
    .map(([name, value]) => `\`${name}=${value}\``)
    .join(', ')}

## Targets

${targetsTable(results)}

## Figures

Medians over the rounds; errors are non-2xx answers plus connection errors and timeouts, summed over every round.

${figuresTable(results)}

## Memory

MB here are MiB: VmRSS and VmHWM from \`/proc/<pid>/status\`, in kB, divided by 1024.

${memoryTable(results)}

The service's peak RSS after the setup (registrations and logins) ${mb(results.memory.servicePeakAfterSetupMb ?? null)},
and as each scenario ended: ${results.scenarios
    .map((scenario) => `${scenario.id} ${mb(scenario.servicePeakRssMb ?? null)}`)
    .join(', ')}.

## Seeded database

${seededSection(results)}

${METHOD}
`;
}

const METHOD = `## Method

- **The service** runs as its own process (\`bench/service.ts\`: \`loadConfig\`, \`buildApp\` and the background
  threads' lower priority, as \`src/server.ts\` does) with \`NODE_ENV=production\` on real Postgres and Redis (the test servers: \`TEST_DATABASE_URL\` /
  \`TEST_REDIS_URL\`, else the local ones, else testcontainers), in a database and a Redis key prefix of its own,
  both removed at the end. Its JSON log at \`info\` goes to /dev/null. Rate limits are off (the load comes from one
  address) and so are the prune timer and verification mail; \`SMTP_URL\` names a server that is never called.
  \`GET /bench/authenticated\` is a route registered only here (\`buildApp\`'s \`extraRoutes\`): \`app.authenticate\`
  (signature, claims, deny-list round trip to Redis) and no database query.
- **Reference servers** (\`bench/reference/\`), each a bare Fastify 5 process with the logger off and the service's
  own key (2048-bit RSA) and @fastify/jwt options, bound what one core can do: \`verify\` (one RS256 verification per
  request, cache off), \`sign\` (one RS256 signature) and \`login\` (one argon2id verification at the service's
  parameters, \`loadConfig\`'s defaults, plus one signature). The service's verifier keeps a cache of verified tokens
  (1,000, in \`src/plugins/access-tokens.ts\`), so with one token per connection its authenticated routes verify each
  signature once; the reference verifies every time.
- **Pinning**: every server on one CPU, the load generator (autocannon's API in \`bench/load.ts\`, a child process)
  and the runner on the other, with \`taskset\`. Local Postgres and Redis are moved onto the load generator's CPU for the run (and back after it), so the server under test has its CPU to itself.
- **Rounds** alternate service and bound (A B A B ...) so drift on a shared machine hits both; medians are reported.
  Each connection is its own user (a Bearer token per connection); in the refresh scenario each connection walks its
  own rotation chain (its own session, each answer's \`refreshToken\` the next request's body), with fresh sessions
  every round, made through \`POST /auth/login\` before it. The mixed scenario runs GET /users/me alone, then with
  login connections (other users) alongside, on the service only.
- **Memory**: VmRSS from \`/proc/<pid>/status\` once a server announced its port, VmHWM (peak) at the end of its
  run, and after the setup and each scenario, to show what raised it. argon2id takes 19 MiB per hash in progress:
  the service runs \`ARGON2_CONCURRENCY\` at once (by default one per CPU it may use, so one when pinned), the
  reference login up to libuv's four. \`bench/embedded-memory.ts\` measures the service on embedded defaults
  (PGlite, embedded store) from a new data folder, and apart the initdb process the service runs once for one
  (\`src/db/pglite-initdb.ts\`): Postgres's initdb is a program of its own too, and its peak is not the server's.
- Numbers from a shared machine are noisy: compare runs made on the same machine, and the ratios more than the
  absolute figures.`;

export async function writeResults(results: Results, options: { write: boolean; repoRoot: string }): Promise<string[]> {
  const resultsDir = path.join(options.repoRoot, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  const written = [path.join(resultsDir, 'latest.json')];
  await writeFile(written[0] as string, json);
  if (options.write) {
    const benchmarks = path.join(options.repoRoot, 'BENCHMARKS.md');
    const committedJson = path.join(resultsDir, 'benchmarks.json');
    await writeFile(benchmarks, benchmarksMarkdown(results));
    await writeFile(committedJson, json);
    written.push(benchmarks, committedJson);
  }
  return written;
}
