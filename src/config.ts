// Configuration: read once from the environment, validated by one TypeBox schema, frozen.
import { availableParallelism } from 'node:os';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseClusterNodes, parseSentinelUrl, type RedisTarget } from './store/redis-target.js';

const Seconds = (defaultValue: number, minimum = 1) =>
  Type.Integer({ minimum, default: defaultValue, description: 'seconds' });
const Count = (defaultValue: number) => Type.Integer({ minimum: 1, default: defaultValue });

/** Every environment variable the service reads, with its default. */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  // Unset: no metrics listener. A port of its own, so GET /metrics is never reachable through the public one.
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  // Loopback by default: a scraper on another host needs it set (0.0.0.0 in a container, the port left unpublished).
  METRICS_HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' },
  ),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'a postgres:// URL' })),
  // false behind a pooler that cannot keep named prepared statements (PgBouncer < 1.21 in transaction mode).
  DATABASE_PREPARED_STATEMENTS: Type.Boolean({ default: true }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  REDIS_URL: Type.Optional(
    Type.String({
      pattern: '^rediss?(\\+sentinel)?://',
      description: 'a redis://, rediss:// or redis+sentinel://host1:26379,host2:26379/<mastername> URL',
    }),
  ),
  // A Redis Cluster instead of REDIS_URL: host1:7000,host2:7001 (the seed nodes; the rest are discovered).
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_KEY_PREFIX: Type.String({ default: 'auth:' }),
  KEYS_DIR: Type.String({ minLength: 1, default: 'keys' }),
  // Unset: http://localhost:<PORT>, so a development server on another port issues tokens naming itself.
  ISSUER: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'an http(s) URL' })),
  AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_ALG: Type.Union([Type.Literal('RS256'), Type.Literal('ES256'), Type.Literal('EdDSA')], { default: 'RS256' }),
  ACCESS_TOKEN_TTL: Seconds(900),
  REFRESH_TOKEN_TTL: Seconds(1_209_600),
  SESSION_MAX_AGE: Seconds(2_592_000),
  REFRESH_REUSE_INTERVAL: Seconds(10, 0),
  CLOCK_TOLERANCE: Seconds(30, 0),
  JWKS_MAX_AGE: Seconds(600, 0),
  KEY_ACTIVATION_DELAY: Type.Optional(Seconds(900, 0)),
  // 0: KEYS_DIR is read at start only (a key change then needs a restart).
  KEYS_RELOAD_INTERVAL: Seconds(30, 0),
  COOKIE_SECURE: Type.Boolean({ default: true }),
  SESSION_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'a secret of at least 32 characters' })),
  REVOCATION_FEED_TOKEN: Type.Optional(
    Type.String({ minLength: 32, description: 'a secret of at least 32 characters' }),
  ),
  CORS_ORIGINS: Type.String({ default: '' }),
  TRUST_PROXY: Type.String({ default: 'false' }),
  RATE_LIMIT_ENABLED: Type.Boolean({ default: true }),
  RATE_LIMIT_LOGIN_PER_IP: Count(10),
  RATE_LIMIT_LOGIN_FAILURES: Count(5),
  RATE_LIMIT_ACCOUNT_FAILURES: Count(100),
  RATE_LIMIT_PASSWORD_FAILURES: Count(5),
  RATE_LIMIT_REGISTER_PER_IP: Count(20),
  RATE_LIMIT_REFRESH_PER_IP: Count(20),
  ARGON2_MEMORY_KIB: Type.Integer({ minimum: 19_456, default: 19_456 }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 2, default: 2 }),
  ARGON2_PARALLELISM: Type.Integer({ minimum: 1, maximum: 16, default: 1 }),
  // 0: as many hashes at once as the process has CPUs (its affinity counted), so logins never starve the event loop.
  ARGON2_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 64, default: 0 }),
  ARGON2_QUEUE_LIMIT: Type.Integer({ minimum: 0, maximum: 10_000, default: 64 }),
  PRUNE_INTERVAL: Seconds(3600, 0),
  // After SIGTERM/SIGINT, how long in-flight requests and deferred work get before the process exits anyway (code 1).
  SHUTDOWN_TIMEOUT: Seconds(10),
  // Unset: the issuer. Links in mail point here; it serves (or proxies) the pages that call the account routes.
  APP_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'an http(s) URL' })),
  // Unset: every message goes to DATA_DIR/outbox/ as an .eml file (refused in production).
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://', description: 'an smtp:// or smtps:// URL' })),
  // Unset: no-reply@<the issuer's host>.
  MAIL_FROM: Type.Optional(
    Type.String({ pattern: '^[^\\r\\n]*@[^\\r\\n]+$', description: 'an address, or "Name <address>"' }),
  ),
  EMAIL_VERIFICATION: Type.Union([Type.Literal('off'), Type.Literal('optional'), Type.Literal('required')], {
    default: 'optional',
  }),
  VERIFY_EMAIL_TTL: Seconds(86_400),
  PASSWORD_RESET_TTL: Seconds(1800),
  EMAIL_CHANGE_TTL: Seconds(3600),
  RATE_LIMIT_MAIL_PER_IP: Count(10),
  RATE_LIMIT_MAIL_PER_EMAIL: Count(3),
  // 32 bytes, base64url: seals TOTP secrets (AES-256-GCM). Unset: KEYS_DIR/data-encryption.key (generated outside
  // production).
  DATA_ENCRYPTION_KEY: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9_-]{43}=?$', description: '32 bytes, base64url (43 characters)' }),
  ),
  // Unset: the issuer's host.
  WEBAUTHN_RP_ID: Type.Optional(Type.String({ pattern: '^[a-z0-9.-]+$', description: 'a host name' })),
  // Unset: the issuer's origin.
  WEBAUTHN_ORIGINS: Type.Optional(Type.String({ minLength: 1 })),
  RATE_LIMIT_PASSKEY_PER_IP: Count(20),
});
export type Env = Static<typeof EnvSchema>;

export type TrustProxy = boolean | number | string[];

export interface Config {
  env: Env['NODE_ENV'];
  isProduction: boolean;
  port: number;
  host: string;
  /** Where GET /metrics is served (METRICS_PORT, METRICS_HOST); undefined: not served. */
  metrics: { port: number; host: string } | undefined;
  logLevel: Env['LOG_LEVEL'];
  /** Unset: embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  /** Named (server-side, per connection) prepared statements for the hot queries; false behind PgBouncer < 1.21. */
  databasePreparedStatements: boolean;
  dataDir: string;
  /** REDIS_URL as given (a single server or Sentinel); unset with a Cluster or the embedded store. */
  redisUrl: string | undefined;
  /** Unset: embedded store in `dataDir`. */
  redis: RedisTarget | undefined;
  redisKeyPrefix: string;
  keysDir: string;
  issuer: string;
  audience: string;
  jwtAlgorithm: Env['JWT_ALG'];
  accessTokenTtl: number;
  refreshTokenTtl: number;
  sessionMaxAge: number;
  refreshReuseInterval: number;
  clockTolerance: number;
  jwksMaxAge: number;
  keyActivationDelay: number;
  /** Seconds between re-reads of KEYS_DIR; 0: never (read at start only). */
  keysReloadInterval: number;
  cookieSecure: boolean;
  /** Unset: KEYS_DIR/session.secret (generated outside production). */
  sessionSecret: string | undefined;
  revocationFeedToken: string | undefined;
  corsOrigins: string[];
  trustProxy: TrustProxy;
  rateLimit: {
    enabled: boolean;
    loginPerIp: number;
    loginFailures: number;
    accountFailures: number;
    /** Wrong current passwords per user per 15 minutes (POST /auth/password). */
    passwordFailures: number;
    registerPerIp: number;
    refreshPerIp: number;
    /** Requests per IP per hour, to each route that sends mail. */
    mailPerIp: number;
    /** Mails per address and purpose per hour. */
    mailPerEmail: number;
    /** `/auth/passkeys/login/options` and `/auth/passkeys/login` together, per IP per minute. */
    passkeyPerIp: number;
  };
  mail: MailConfig;
  /** Unset: KEYS_DIR/data-encryption.key (generated outside production). */
  dataEncryptionKey: string | undefined;
  webauthn: { rpId: string; origins: string[] };
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  /** Hashes and verifications run at once, and how many more may wait; beyond that, 503 with Retry-After. */
  passwordHashing: { concurrency: number; queueLimit: number };
  pruneInterval: number;
  /** Seconds a graceful shutdown may take before the process exits with code 1. */
  shutdownTimeout: number;
}

export type EmailVerification = Env['EMAIL_VERIFICATION'];

export interface MailConfig {
  /** Unset: messages go to `<dataDir>/outbox/` as .eml files. */
  smtpUrl: string | undefined;
  from: string;
  /** Origin (and optional path) of the pages the links open; no trailing slash. */
  appUrl: string;
  verification: EmailVerification;
  /** Seconds each kind of link lives. */
  ttl: { verifyEmail: number; passwordReset: number; emailChange: number };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const envKeys = Object.keys(EnvSchema.properties) as (keyof Env)[];
const integerKeys = envKeys.filter((key) => (EnvSchema.properties[key] as { type?: string }).type === 'integer');
const secretKeys = new Set<string>([
  'DATABASE_URL',
  'REDIS_URL',
  // May carry the nodes' password (redis://:password@host1:7000,...).
  'REDIS_CLUSTER_NODES',
  'REVOCATION_FEED_TOKEN',
  'SESSION_SECRET',
  'SMTP_URL',
  'DATA_ENCRYPTION_KEY',
]);

/** Reads and validates the environment; throws one ConfigError naming every bad variable. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  // Empty strings count as unset, so `FOO=` in a .env file falls back to the default.
  const raw: Record<string, unknown> = {};
  for (const key of envKeys) {
    const value = source[key]?.trim();
    if (value !== undefined && value !== '') raw[key] = value;
  }
  // Default and Convert mutate their argument: keep `raw` as the user wrote it, for checks and messages.
  const env = Value.Convert(EnvSchema, Value.Default(EnvSchema, { ...raw })) as Env;

  const problems: string[] = [];
  const invalid = new Set<string>();
  const report = (key: string, problem: string) => {
    invalid.add(key);
    // Secrets are named, never echoed: the message ends up in logs.
    const shown = secretKeys.has(key) || raw[key] === undefined ? key : `${key}=${JSON.stringify(raw[key])}`;
    problems.push(`${shown}: ${problem}`);
  };
  for (const key of integerKeys) {
    // TypeBox's conversion would read "1e3" or "1.5" as 1: only plain digits are a whole number here.
    if (raw[key] !== undefined && !/^\d+$/.test(String(raw[key]))) report(key, describe(key, ''));
  }
  for (const error of Value.Errors(EnvSchema, env)) {
    const key = error.path.slice(1).split('/')[0] ?? '';
    if (!invalid.has(key)) report(key, describe(key as keyof Env, error.message));
  }

  const check = (key: string, ok: boolean, problem: string) => {
    if (!ok && !invalid.has(key)) report(key, problem);
  };
  check('DATABASE_URL', urlParses(env.DATABASE_URL), 'not a valid URL');
  const redis = redisTarget(env);
  if (!redis.ok) check(redis.key, false, redis.problem);
  check('ISSUER', urlParses(env.ISSUER), 'not a valid URL');
  check('APP_URL', urlParses(env.APP_URL), 'not a valid URL');
  check('SMTP_URL', urlParses(env.SMTP_URL), 'not a valid URL');
  const corsOrigins = splitList(env.CORS_ORIGINS);
  const badOrigins = corsOrigins.filter((origin) => !isOrigin(origin));
  check(
    'CORS_ORIGINS',
    badOrigins.length === 0,
    `${badOrigins.join(', ')}: expected exact origins like https://app.example.com`,
  );
  const webauthnOrigins = splitList(env.WEBAUTHN_ORIGINS ?? '');
  const badWebauthnOrigins = webauthnOrigins.filter((origin) => !isOrigin(origin));
  check(
    'WEBAUTHN_ORIGINS',
    badWebauthnOrigins.length === 0,
    `${badWebauthnOrigins.join(', ')}: expected exact origins like https://app.example.com`,
  );
  const trustProxy = parseTrustProxy(env.TRUST_PROXY);
  if (env.METRICS_PORT !== undefined && !invalid.has('METRICS_PORT') && !invalid.has('PORT')) {
    check('METRICS_PORT', env.METRICS_PORT !== env.PORT, 'must differ from PORT');
  }
  check('TRUST_PROXY', trustProxy !== undefined, 'expected true, false, a hop count, or addresses/CIDRs');
  if (!invalid.has('REFRESH_TOKEN_TTL') && !invalid.has('SESSION_MAX_AGE')) {
    check(
      'REFRESH_TOKEN_TTL',
      env.REFRESH_TOKEN_TTL <= env.SESSION_MAX_AGE,
      `exceeds SESSION_MAX_AGE (${env.SESSION_MAX_AGE})`,
    );
  }
  if (!invalid.has('ACCESS_TOKEN_TTL') && !invalid.has('REFRESH_TOKEN_TTL')) {
    check('ACCESS_TOKEN_TTL', env.ACCESS_TOKEN_TTL < env.REFRESH_TOKEN_TTL, 'must be shorter than REFRESH_TOKEN_TTL');
  }

  const issuer = env.ISSUER ?? `http://localhost:${env.PORT}`;
  const isProduction = env.NODE_ENV === 'production';
  if (isProduction) {
    // Embedded stores are single-process and insecure cookies are for plain-HTTP development only.
    check('DATABASE_URL', env.DATABASE_URL !== undefined, 'required when NODE_ENV=production');
    check(
      'REDIS_URL',
      env.REDIS_URL !== undefined || env.REDIS_CLUSTER_NODES !== undefined,
      'required (or REDIS_CLUSTER_NODES) when NODE_ENV=production',
    );
    check('COOKIE_SECURE', env.COOKIE_SECURE, 'must be true when NODE_ENV=production');
    // The outbox is a development convenience: in production a reset link must reach its user or nobody.
    check('SMTP_URL', env.SMTP_URL !== undefined, 'required when NODE_ENV=production');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    env: env.NODE_ENV,
    isProduction,
    port: env.PORT,
    host: env.HOST,
    metrics: env.METRICS_PORT === undefined ? undefined : { port: env.METRICS_PORT, host: env.METRICS_HOST },
    logLevel: env.LOG_LEVEL,
    databaseUrl: env.DATABASE_URL,
    databasePreparedStatements: env.DATABASE_PREPARED_STATEMENTS,
    dataDir: env.DATA_DIR,
    redisUrl: env.REDIS_URL,
    redis: redis.ok ? redis.value : undefined,
    redisKeyPrefix: env.REDIS_KEY_PREFIX,
    keysDir: env.KEYS_DIR,
    issuer,
    audience: env.AUDIENCE ?? issuer,
    jwtAlgorithm: env.JWT_ALG,
    accessTokenTtl: env.ACCESS_TOKEN_TTL,
    refreshTokenTtl: env.REFRESH_TOKEN_TTL,
    sessionMaxAge: env.SESSION_MAX_AGE,
    refreshReuseInterval: env.REFRESH_REUSE_INTERVAL,
    clockTolerance: env.CLOCK_TOLERANCE,
    jwksMaxAge: env.JWKS_MAX_AGE,
    // A new key is published this long before it signs, so every cached JWKS has seen it.
    keyActivationDelay: env.KEY_ACTIVATION_DELAY ?? env.JWKS_MAX_AGE + 300,
    keysReloadInterval: env.KEYS_RELOAD_INTERVAL,
    cookieSecure: env.COOKIE_SECURE,
    sessionSecret: env.SESSION_SECRET,
    revocationFeedToken: env.REVOCATION_FEED_TOKEN,
    corsOrigins,
    trustProxy: trustProxy as TrustProxy,
    rateLimit: {
      enabled: env.RATE_LIMIT_ENABLED,
      loginPerIp: env.RATE_LIMIT_LOGIN_PER_IP,
      loginFailures: env.RATE_LIMIT_LOGIN_FAILURES,
      accountFailures: env.RATE_LIMIT_ACCOUNT_FAILURES,
      passwordFailures: env.RATE_LIMIT_PASSWORD_FAILURES,
      registerPerIp: env.RATE_LIMIT_REGISTER_PER_IP,
      refreshPerIp: env.RATE_LIMIT_REFRESH_PER_IP,
      mailPerIp: env.RATE_LIMIT_MAIL_PER_IP,
      mailPerEmail: env.RATE_LIMIT_MAIL_PER_EMAIL,
      passkeyPerIp: env.RATE_LIMIT_PASSKEY_PER_IP,
    },
    dataEncryptionKey: env.DATA_ENCRYPTION_KEY,
    webauthn: {
      rpId: env.WEBAUTHN_RP_ID ?? hostOf(issuer),
      origins: webauthnOrigins.length > 0 ? webauthnOrigins : [new URL(issuer).origin],
    },
    mail: {
      smtpUrl: env.SMTP_URL,
      from: env.MAIL_FROM ?? `no-reply@${hostOf(issuer)}`,
      appUrl: (env.APP_URL ?? issuer).replace(/\/+$/, ''),
      verification: env.EMAIL_VERIFICATION,
      ttl: {
        verifyEmail: env.VERIFY_EMAIL_TTL,
        passwordReset: env.PASSWORD_RESET_TTL,
        emailChange: env.EMAIL_CHANGE_TTL,
      },
    },
    argon2: {
      memoryCost: env.ARGON2_MEMORY_KIB,
      timeCost: env.ARGON2_TIME_COST,
      parallelism: env.ARGON2_PARALLELISM,
    },
    passwordHashing: {
      concurrency: env.ARGON2_CONCURRENCY === 0 ? availableParallelism() : env.ARGON2_CONCURRENCY,
      queueLimit: env.ARGON2_QUEUE_LIMIT,
    },
    pruneInterval: env.PRUNE_INTERVAL,
    shutdownTimeout: env.SHUTDOWN_TIMEOUT,
  });
}

function describe(key: keyof Env, schemaMessage: string): string {
  const schema = EnvSchema.properties[key] as { type?: string; description?: string; anyOf?: { const: string }[] };
  if (schema.anyOf) return `expected one of ${schema.anyOf.map((option) => option.const).join(', ')}`;
  if (schema.type === 'integer') {
    const bounds = schema as { minimum?: number; maximum?: number };
    const range = bounds.maximum === undefined ? `>= ${bounds.minimum}` : `${bounds.minimum}..${bounds.maximum}`;
    return `expected a whole number ${range}${schema.description ? ` (${schema.description})` : ''}`;
  }
  if (schema.type === 'boolean') return 'expected true or false';
  return schema.description ? `expected ${schema.description}` : schemaMessage;
}

/** The Redis the store connects to; REDIS_URL and REDIS_CLUSTER_NODES are two ways to say it, never both. */
function redisTarget(
  env: Env,
):
  | { ok: true; value: RedisTarget | undefined }
  | { ok: false; key: 'REDIS_URL' | 'REDIS_CLUSTER_NODES'; problem: string } {
  const { REDIS_URL: url, REDIS_CLUSTER_NODES: nodes } = env;
  if (url !== undefined && nodes !== undefined) {
    return {
      ok: false,
      key: 'REDIS_CLUSTER_NODES',
      problem: 'set either REDIS_URL (one server, or Sentinel) or REDIS_CLUSTER_NODES (a Cluster), not both',
    };
  }
  if (nodes !== undefined) {
    const cluster = parseClusterNodes(nodes);
    return cluster.ok ? cluster : { ok: false, key: 'REDIS_CLUSTER_NODES', problem: cluster.problem };
  }
  if (url === undefined) return { ok: true, value: undefined };
  if (/^rediss?\+sentinel:/.test(url)) {
    const sentinel = parseSentinelUrl(url);
    return sentinel.ok ? sentinel : { ok: false, key: 'REDIS_URL', problem: sentinel.problem };
  }
  if (!urlParses(url)) return { ok: false, key: 'REDIS_URL', problem: 'not a valid URL' };
  return { ok: true, value: { mode: 'single', url } };
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname || 'localhost';
  } catch {
    return 'localhost';
  }
}

function urlParses(value: string | undefined): boolean {
  if (value === undefined) return true;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function parseTrustProxy(value: string): TrustProxy | undefined {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^\d+$/.test(value)) return Number(value);
  const addresses = splitList(value);
  const addressOrCidr = /^[0-9a-fA-F:.]+(\/\d{1,3})?$/;
  return addresses.length > 0 && addresses.every((address) => addressOrCidr.test(address)) ? addresses : undefined;
}
