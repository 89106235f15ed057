// Finds Postgres and Redis for tests: TEST_DATABASE_URL / TEST_REDIS_URL, else the local defaults, else testcontainers.
import net from 'node:net';

export interface TestServers {
  /** An admin URL: tests create and drop their own databases through it. */
  databaseUrl: string;
  redisUrl: string;
}

const LOCAL_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS = 'redis://127.0.0.1:6379';

function reachable(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

let servers: Promise<TestServers> | undefined;

/** Resolved once per test process (each tap test file is its own process). */
export function testServers(): Promise<TestServers> {
  servers ??= findServers();
  return servers;
}

async function findServers(): Promise<TestServers> {
  const [postgresUp, redisUp] = await Promise.all([reachable('127.0.0.1', 5432), reachable('127.0.0.1', 6379)]);
  const databaseUrl = process.env.TEST_DATABASE_URL ?? (postgresUp ? LOCAL_POSTGRES : await startPostgresContainer());
  const redisUrl = process.env.TEST_REDIS_URL ?? (redisUp ? LOCAL_REDIS : await startRedisContainer());
  return { databaseUrl, redisUrl };
}

// Only where a Docker engine exists; imported lazily so the suite never needs it otherwise.
async function startPostgresContainer(): Promise<string> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer('postgres:16-alpine')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  return `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/postgres`;
}

async function startRedisContainer(): Promise<string> {
  const { GenericContainer } = await import('testcontainers');
  const container = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
  return `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
}
