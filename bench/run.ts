// `npm run bench`: the real service, as its own process on real Postgres and Redis, measured against reference
// servers that bound what the machine can do (one RS256 verification, one signature, one argon2id verification
// plus a signature per request), in alternating rounds, with the servers and the load generator pinned to separate
// CPUs. Prints Markdown tables, writes bench/results/latest.json, and with --write regenerates BENCHMARKS.md.
// Progress goes to stderr, the tables to stdout. See BENCHMARKS.md for the method and `--help` for the flags.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { makeKeysDir } from '../test/helpers/app.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { testServers } from '../test/helpers/servers.js';
import { buildForBench } from './build.js';
import { type BenchUser, expectOk, login, loginBody, PASSWORD, refreshBody, registerUsers } from './fixtures.js';
import {
  type EmbeddedMemory,
  loadEmbeddedMemoryModule,
  loadSeedModule,
  MissingModule,
  type SeedCounts,
} from './interfaces.js';
import { LoadGenerator } from './load-client.js';
import { describeMachine } from './machine.js';
import { type Options, parseOptions, reproduceCommand, USAGE } from './options.js';
import {
  assertNoCrash,
  type Child,
  choosePinning,
  killAll,
  type Pinning,
  pinBackingServers,
  pinSelf,
  repoRoot,
  startChild,
  stopAll,
} from './processes.js';
import {
  markdownSummary,
  type ProcessMemoryRow,
  type Results,
  type ScenarioResult,
  type SeededResult,
  type Skipped,
  writeResults,
} from './report.js';
import { type Credentials, type Origins, type Pair, SEEDED_SCENARIOS, scenarios } from './scenarios.js';
import { atLeast, atMost, type Check, type Run, summarize } from './stats.js';

const startedAt = Date.now();
// Other work on the machine shows here (the benchmark's own processes are not started yet).
const loadAverageAtStart = os.loadavg();
const elapsed = () => `${Math.round((Date.now() - startedAt) / 1000)}s`;
const log = (line: string) => process.stderr.write(`[bench +${elapsed()}] ${line}\n`);

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
let options: Options;
try {
  options = parseOptions(argv, process.env);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(2);
}

// Undone in reverse order, once, whatever happens: database, Redis keys, temporary folders.
const cleanups: (() => unknown)[] = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    killAll();
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`cleanup failed: ${(error as Error).message}`);
      }
    }
  })();
  return cleaning;
}
// `on`, not `once`: Ctrl-C reaches us twice (from the terminal, and relayed by tsx), and a second default SIGINT
// would end the process halfway through the cleanup.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    log(`${signal}: killing the servers and cleaning up`);
    cleanUp().finally(() => process.exit(130));
  });
}

/** The service under test: the real app, production settings, its log discarded. */
function serviceEnvironment(databaseUrl: string, redisUrl: string, keysDir: string, dataDir: string, prefix: string) {
  const shown = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    // One client address sends everything: the limits would measure 429s.
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
    EMAIL_VERIFICATION: 'off',
    // Required in production; nothing in the scenarios sends mail, so nothing listens there.
    SMTP_URL: 'smtp://127.0.0.1:2525',
    ISSUER: 'http://127.0.0.1',
    // The allocator and heap settings the Docker image runs with (see Dockerfile).
    MALLOC_ARENA_MAX: '1',
    NODE_OPTIONS: '--max-semi-space-size=4 --max-old-space-size=96',
  };
  const secret = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    KEYS_DIR: keysDir,
    DATA_DIR: dataDir,
    // Production never generates these: provided as a deployment would.
    SESSION_SECRET: randomBytes(32).toString('base64url'),
    DATA_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
  };
  return { shown, all: { ...shown, ...secret } };
}

async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** The service's default (the benchmark does not set it), which the reference signs with too. */
const ACCESS_TOKEN_TTL = loadConfig({}).accessTokenTtl;

const origin = (child: Child) => `http://127.0.0.1:${child.port}`;

/**
 * Logs in every /users/me user once (its Bearer token) and makes `sessions` more sessions for the refresh chains,
 * all through the service's own login route.
 */
async function makeCredentials(serviceOrigin: string, users: BenchUser[], sessions: number): Promise<Credentials> {
  const { connections, loginConnections } = options;
  const perConnection = users.slice(0, connections);
  const logins = await login(serviceOrigin, perConnection);
  const chains = Array.from({ length: sessions }, (_, i) => perConnection[i % perConnection.length] as BenchUser);
  const fresh = (await login(serviceOrigin, chains)).map((session) => refreshBody(session.refreshToken));
  return {
    bearers: logins.map((session) => `Bearer ${session.accessToken}`),
    loginBodies: users.slice(0, loginConnections).map(loginBody),
    stormLoginBodies: users.slice(connections, connections + loginConnections).map(loginBody),
    takeSessions: (count) => {
      if (fresh.length < count) throw new Error(`refresh: ${count} fresh sessions needed, ${fresh.length} left`);
      return fresh.splice(0, count);
    },
    sampleRefreshBodies: logins.map((session) => refreshBody(session.refreshToken)),
  };
}

/** Sessions a pair uses: one set per measured round and one for the warm-up. */
const sessionsFor = (pairs: Pair[], rounds: number) =>
  pairs.reduce((sum, pair) => sum + (pair.sessionsPerRun ?? 0) * (rounds + (options.warmupSeconds > 0 ? 1 : 0)), 0);

/** Fails before measuring when a route does not accept what its scenario sends. */
async function checkRoutes(origins: Origins, credentials: Credentials): Promise<void> {
  const bearer = { authorization: credentials.bearers[0] as string };
  const json = (body: string) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await expectOk(`${origins.service}/bench/authenticated`, { headers: bearer }, 'GET /bench/authenticated');
  await expectOk(`${origins.verify}/verify`, { headers: bearer }, 'reference verify, with a token of the service');
  await expectOk(`${origins.sign}/sign`, json(credentials.sampleRefreshBodies[0] as string), 'reference sign');
  await expectOk(`${origins.login}/login`, json(credentials.loginBodies[0] as string), 'reference login');
}

/** Warm-up of each side, then `rounds` rounds alternating A and B (or A alone). */
async function runPair(pair: Pair, load: LoadGenerator, rounds: number, withB = true): Promise<{ a: Run[]; b: Run[] }> {
  const sides = withB ? [pair.a, pair.b] : [pair.a];
  const run = async (side: (typeof sides)[number], seconds: number) => {
    const results = await load.run(seconds, side.streams());
    assertNoCrash();
    // Lets the server close the finished connections and settle before the next run.
    await sleep(300);
    return results;
  };
  if (options.warmupSeconds > 0) for (const side of sides) await run(side, options.warmupSeconds);
  const a: Run[] = [];
  const b: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    a.push(await run(pair.a, options.seconds));
    if (withB) b.push(await run(pair.b, options.seconds));
    const figures = (runs: Run[]) => {
      const measured = runs.at(-1)?.[0];
      return measured
        ? `${Math.round(measured.rps)} req/s, p99 ${measured.p99} ms, ${measured.non2xx + measured.errors} errors`
        : '';
    };
    log(`${pair.id} round ${round}/${rounds}: A ${figures(a)}${withB ? ` | B ${figures(b)}` : ''}`);
  }
  return { a, b };
}

/**
 * Seeds the database, restarts the service on it, and runs each seeded scenario in rounds alternating with a second
 * service on an empty database (the same users, started after the seed), so the two meet the same machine: the
 * check compares them, and drift since the empty-database run (minutes earlier, before gigabytes were written)
 * counts for neither.
 */
async function seedAndRerun(context: {
  counts: SeedCounts;
  databaseUrl: string;
  startService: () => Promise<Child>;
  stopService: () => Promise<void>;
  /** The same service on a new, migrated database of its own. */
  startEmptyService: () => Promise<Child>;
  origins: Origins;
  users: BenchUser[];
  load: LoadGenerator;
  empty: ScenarioResult[];
}): Promise<{ seeded: SeededResult | Skipped; memory?: ProcessMemoryRow }> {
  const seedModule = await loadSeedModule();
  const selected = context.empty.filter((scenario) => SEEDED_SCENARIOS.includes(scenario.id));
  // The service is stopped while seeding: COPY gets the machine, and the restart starts from cold caches like a
  // deployment on a database that size.
  await context.stopService();
  log(`seeding ${JSON.stringify(context.counts)} (bench/seed.ts)`);
  const seedStarted = Date.now();
  await seedModule.seedRows(context.databaseUrl, context.counts, (line) => log(`seed: ${line}`));
  // Fresh statistics, as autovacuum would have them on a database that grew to this size.
  const client = new pg.Client({ connectionString: context.databaseUrl });
  await client.connect();
  await client.query('ANALYZE').finally(() => client.end());
  const seedSeconds = (Date.now() - seedStarted) / 1000;
  log(`seeded in ${Math.round(seedSeconds)} s; restarting the service`);

  const service = await context.startService();
  const bootRssMb = service.memory()?.rssMb ?? null;
  const emptyService = await context.startEmptyService();
  const rerun = (serviceOrigin: string, credentials: Credentials) =>
    scenarios({ ...context.origins, service: serviceOrigin }, credentials, options).filter((pair) =>
      selected.some((scenario) => scenario.id === pair.id),
    );
  // Access tokens from before may be near expiry after a long seed: every credential is made again.
  const sessions = sessionsFor(rerun(origin(service), noCredentials), options.seedRounds);
  await registerUsers(origin(emptyService), context.users.length);
  const pairs = rerun(origin(service), await makeCredentials(origin(service), context.users, sessions));
  const alongside = rerun(origin(emptyService), await makeCredentials(origin(emptyService), context.users, sessions));
  const results: SeededResult['scenarios'] = [];
  for (const pair of pairs) {
    const empty = selected.find((scenario) => scenario.id === pair.id) as ScenarioResult;
    const emptySide = (alongside.find((other) => other.id === pair.id) as Pair).a;
    const b = { ...emptySide, label: `${emptySide.label}, empty database` };
    const runs = await runPair({ ...pair, b }, context.load, options.seedRounds);
    const seeded = summarize(pair.a.label, pair.a.server, runs.a);
    const emptyAlongside = summarize(b.label, b.server, runs.b);
    const ratio = seeded.median.rps / emptyAlongside.median.rps;
    results.push({
      id: pair.id,
      title: pair.title,
      empty: empty.a.median,
      emptyAlongside,
      seeded,
      check: atLeast(`seeded.${pair.id}`, `${pair.title}: seeded req/s vs empty`, ratio, 0.85, 'ratio'),
    });
  }
  await emptyService.stop();
  const plans = await seedModule.explainHotQueries(context.databaseUrl);
  const memory = { name: 'service (seeded database)', bootRssMb, peakRssMb: service.memory()?.peakRssMb ?? null };
  return {
    seeded: { counts: context.counts, seedSeconds, rounds: options.seedRounds, scenarios: results, plans },
    memory,
  };
}

/** Only to list the pairs (their ids, what sessions they need) before any credential exists. */
const noCredentials: Credentials = {
  bearers: [],
  loginBodies: [],
  stormLoginBodies: [],
  takeSessions: () => [],
  sampleRefreshBodies: [],
};

async function measureEmbedded(): Promise<EmbeddedMemory | Skipped> {
  if (!options.embedded) return { skipped: '--no-embedded' };
  try {
    const module = await loadEmbeddedMemoryModule();
    log('embedded defaults: bench/embedded-memory.ts');
    return await module.measureEmbeddedMemory((line) => log(`embedded: ${line}`));
  } catch (error) {
    return notMeasured('embedded defaults', error);
  }
}

/**
 * The other modules' parts of the run (seeding, embedded memory) are reported as not measured when they fail, so
 * the scenarios measured before still reach the report; a failure (unlike a module not written yet) still makes
 * the run exit 1.
 */
const failures: string[] = [];
function notMeasured(what: string, error: unknown): Skipped {
  const message = (error as Error).message ?? String(error);
  if (error instanceof MissingModule) {
    log(`${what}: skipped, ${message}`);
    return { skipped: message };
  }
  log(`${what}: FAILED: ${(error as Error).stack ?? message}`);
  failures.push(`${what}: ${message}`);
  return { skipped: `failed: ${message.split('\n')[0]}` };
}

async function main(pinning: Pinning): Promise<Results> {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  cleanups.push(() => database.drop());
  const keysDir = await makeKeysDir({ teardown: (fn) => cleanups.push(fn) });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-bench-data-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  // Unique per run, so two runs (or a test suite) on one Redis never share a key.
  const redisKeyPrefix = `bench:${randomBytes(6).toString('hex')}:`;
  cleanups.push(() => deleteRedisKeys(servers.redisUrl, redisKeyPrefix));
  log(
    `database ${new URL(database.url).pathname.slice(1)}, Redis key prefix ${redisKeyPrefix} (both removed at the end)`,
  );
  const env = serviceEnvironment(database.url, servers.redisUrl, keysDir, dataDir, redisKeyPrefix);
  const machine = await describeMachine(servers.databaseUrl, servers.redisUrl);

  log('transpiling src/ and bench/ for the server processes');
  const build = await buildForBench(repoRoot);
  cleanups.push(() => build.remove());
  const startServiceAs = (name: string, serviceEnv: Record<string, string>) =>
    startChild(name, build.file('bench/service.ts'), { env: serviceEnv, cpu: pinning.serverCpu });
  const startService = () => startServiceAs('service', env.all);
  log('starting the service (migrations run at boot)');
  let service = await startService();
  const serviceBootRss = service.memory()?.rssMb ?? null;

  // The same key, issuer and audience as the service: the reference verifies the service's own tokens.
  const referenceEnv = {
    NODE_ENV: 'production',
    BENCH_KEY_FILE: path.join(keysDir, 'test.pem'),
    BENCH_ISSUER: env.shown.ISSUER,
    BENCH_AUDIENCE: env.shown.ISSUER,
    BENCH_ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
    BENCH_PASSWORD: PASSWORD,
  };
  const references: Record<'verify' | 'sign' | 'login', Child> = {
    verify: await startChild('reference verify', build.file('bench/reference/verify.ts'), {
      env: referenceEnv,
      cpu: pinning.serverCpu,
    }),
    sign: await startChild('reference sign', build.file('bench/reference/sign.ts'), {
      env: referenceEnv,
      cpu: pinning.serverCpu,
    }),
    login: await startChild('reference login', build.file('bench/reference/login.ts'), {
      env: referenceEnv,
      cpu: pinning.serverCpu,
    }),
  };
  const bootRss = Object.fromEntries(
    Object.entries(references).map(([name, child]) => [name, child.memory()?.rssMb ?? null]),
  );
  const loadChild = await startChild('load generator', build.file('bench/load.ts'), {
    env: { NODE_ENV: 'production' },
    cpu: pinning.loadCpu,
  });
  const load = new LoadGenerator(loadChild);

  const origins: Origins = {
    service: origin(service),
    verify: origin(references.verify),
    sign: origin(references.sign),
    login: origin(references.login),
  };
  const known = scenarios(origins, noCredentials, options).map((pair) => pair.id);
  const unknown = options.only?.filter((id) => !known.includes(id)) ?? [];
  if (unknown.length > 0) throw new Error(`--only: unknown scenario ${unknown.join(', ')}; known: ${known.join(', ')}`);
  const select = (credentials: Credentials) =>
    scenarios(origins, credentials, options).filter((pair) => !options.only || options.only.includes(pair.id));

  const userCount = options.connections + options.loginConnections;
  const sessions = sessionsFor(select(noCredentials), options.rounds);
  log(`registering ${userCount} users, logging in, and making ${sessions} sessions for the refresh chains`);
  const users = await registerUsers(origins.service, userCount);
  const credentials = await makeCredentials(origins.service, users, sessions);
  await checkRoutes(origins, credentials);
  const peakAfterSetup = service.memory()?.peakRssMb ?? null;

  const scenarioResults: ScenarioResult[] = [];
  let bearersMadeAt = Date.now();
  for (const pair of select(credentials)) {
    // Access tokens live ACCESS_TOKEN_TTL (900 s): new ones before a pair that would outlast them.
    const pairSeconds = 2 * (options.warmupSeconds + options.rounds * (options.seconds + 1));
    if ((Date.now() - bearersMadeAt) / 1000 + pairSeconds > ACCESS_TOKEN_TTL - 60) {
      log('new access tokens for the Bearer connections');
      const logins = await login(origins.service, users.slice(0, options.connections));
      credentials.bearers = logins.map((session) => `Bearer ${session.accessToken}`);
      bearersMadeAt = Date.now();
    }
    log(`${pair.id}: ${pair.title} (${pair.a.label} vs ${pair.b.label})`);
    const { a, b } = await runPair(pair, load, options.rounds);
    const [summaryA, summaryB] = [summarize(pair.a.label, pair.a.server, a), summarize(pair.b.label, pair.b.server, b)];
    scenarioResults.push({
      id: pair.id,
      title: pair.title,
      connections: pair.connections,
      a: summaryA,
      b: summaryB,
      checks: pair.checks(summaryA, summaryB),
      servicePeakRssMb: service.memory()?.peakRssMb ?? null,
    });
  }

  // Peaks at the end of the empty-database run, before anything is stopped.
  const servicePeak = service.memory()?.peakRssMb ?? null;
  const processes: ProcessMemoryRow[] = [
    { name: 'service (Postgres and Redis)', bootRssMb: serviceBootRss, peakRssMb: servicePeak },
    ...Object.entries(references).map(([name, child]) => ({
      name: `reference ${name}`,
      bootRssMb: bootRss[name] ?? null,
      peakRssMb: child.memory()?.peakRssMb ?? null,
    })),
    { name: 'load generator', bootRssMb: null, peakRssMb: loadChild.memory()?.peakRssMb ?? null },
  ];

  let seeded: Results['seeded'] = null;
  if (options.seed) {
    const emptyDatabase = await createTestDatabase(servers.databaseUrl);
    cleanups.push(() => emptyDatabase.drop());
    // Its own deny-list keys, under the run's prefix (removed at the end with the rest).
    const emptyEnv = { ...env.all, DATABASE_URL: emptyDatabase.url, REDIS_KEY_PREFIX: `${redisKeyPrefix}empty:` };
    const outcome = await seedAndRerun({
      counts: options.seed,
      databaseUrl: database.url,
      startService: async () => {
        service = await startService();
        return service;
      },
      stopService: () => service.stop(),
      startEmptyService: () => startServiceAs('service (empty database)', emptyEnv),
      origins,
      users,
      load,
      empty: scenarioResults,
    }).catch((error: unknown) => ({ seeded: notMeasured('seeded database', error), memory: undefined }));
    seeded = outcome.seeded;
    if (outcome.memory) processes.push(outcome.memory);
  }

  // The embedded measurement gets the machine to itself.
  await stopAll();
  const embedded = await measureEmbedded();

  const checks: Check[] = [
    ...scenarioResults.flatMap((scenario) => scenario.checks),
    atMost('memory.service', 'service peak RSS, on Postgres and Redis', servicePeak ?? Number.NaN, 150, 'MB'),
    ...('skipped' in embedded
      ? []
      : [
          atMost(
            'memory.embedded',
            `service peak RSS on embedded defaults, a new data folder (${embedded.registrations} registrations)`,
            embedded.peakRssMb,
            300,
            'MB',
          ),
        ]),
    ...(seeded && 'scenarios' in seeded ? seeded.scenarios.map((scenario) => scenario.check) : []),
  ];
  return {
    schema: 1,
    date: new Date(startedAt).toISOString(),
    command: reproduceCommand(argv, process.env),
    wallSeconds: (Date.now() - startedAt) / 1000,
    machine,
    pinning: pinning.description,
    loadAverage: { start: loadAverageAtStart, end: os.loadavg() },
    settings: {
      seconds: options.seconds,
      warmupSeconds: options.warmupSeconds,
      rounds: options.rounds,
      connections: options.connections,
      loginConnections: options.loginConnections,
      runtime: `node ${process.version} on src/ and bench/ transpiled to JavaScript (bench/build.ts)`,
      serviceEnv: env.shown,
    },
    scenarios: scenarioResults,
    memory: { processes, embedded, servicePeakAfterSetupMb: peakAfterSetup },
    seeded,
    checks,
  };
}

/** The written JSON in Biome's format, so `npm run lint` accepts it as the run left it. */
function formatJson(files: string[]): void {
  const biome = path.join(repoRoot, 'node_modules', '.bin', 'biome');
  const formatted = spawnSync(biome, ['format', '--write', ...files], { cwd: repoRoot, encoding: 'utf8' });
  if (formatted.status !== 0) log(`biome format failed; the JSON is valid but unformatted: ${formatted.stderr}`);
}

try {
  const pinning = choosePinning();
  // The runner shares the load generator's CPU: it only waits while a run is measured.
  pinSelf(pinning.loadCpu);
  const backing = pinBackingServers(pinning.loadCpu);
  cleanups.unshift(backing.restore);
  pinning.description += `; ${backing.description}`;
  log(pinning.description);
  const results = await main(pinning);
  const written = await writeResults(results, { write: options.write, repoRoot });
  formatJson(written.filter((file) => file.endsWith('.json')));
  process.stdout.write(`\n${markdownSummary(results)}\n\n`);
  log(`wrote ${written.map((file) => path.relative(repoRoot, file)).join(', ')}`);
  for (const failure of failures) log(`not measured because it failed: ${failure}`);
  if (failures.length > 0) process.exitCode = 1;
  const failed = results.checks.filter((check) => !check.pass).length;
  log(
    `${results.checks.length - failed} of ${results.checks.length} targets met; ${Math.round(results.wallSeconds)} s in all`,
  );
} catch (error) {
  log(`failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
