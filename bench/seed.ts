// `npm run bench -- --seed-rows`: years of users, sessions, refresh tokens, security events and revocations, loaded
// with COPY (binary) into the benchmark's already migrated database, then EXPLAIN of the service's hot queries on
// them, and a check that housekeeping deletes the dead rows. Every row is a pure function of its index (ids, times,
// state), so each table streams on its own, in batches, with no table held in memory.
//
// seedRows loads; explainHotQueries plans (refreshSteps: the refresh path, inside its SQL function too);
// tableSizes measures; checkHousekeeping prunes (destructive: last). SEEDED_PASSWORD logs in seededUserEmail(i).
import { hash as digest, randomInt } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { type Config, loadConfig } from '../src/config.js';
import { type Database, type Executor, openPostgres } from '../src/db/client.js';
import { schema } from '../src/db/schema.js';
import { randomToken, sha256 } from '../src/lib/ids.js';
import { listLiveRevocations, pruneRevocations } from '../src/modules/revocations/revocations.repository.js';
import { insertSecurityEvent, listSecurityEvents } from '../src/modules/security-events/security-events.repository.js';
import { pruneExpired, REVOKED_SESSION_RETENTION_MS } from '../src/modules/sessions/housekeeping.js';
import {
  findTokenOwner,
  insertRefreshToken,
  insertSession,
  listLiveSessions,
  pruneSessions,
  revokeSessionRow,
  rotateRefreshToken,
} from '../src/modules/sessions/sessions.repository.js';
import { findCredentialsByEmail, findUsersByIdsFast, lockCredentials } from '../src/modules/users/users.repository.js';
import { Passwords } from '../src/plugins/passwords.js';

export interface SeedCounts {
  users: number;
  sessions: number;
  refreshTokens: number;
}

/** The settings the seeded rows must agree with: lifetimes, and the parameters of the one password hash. */
export type SeedConfig = Pick<
  Config,
  'argon2' | 'refreshTokenTtl' | 'sessionMaxAge' | 'accessTokenTtl' | 'clockTolerance'
>;

export interface SeedOptions {
  /** Default: the service's defaults. Pass the benchmark's config when it changes any of them. */
  config?: SeedConfig;
  /** A `registered` event per user, `login_succeeded` per session, `logged_out` per revoked one. Default true. */
  securityEvents?: boolean;
  /** COPY connections at once (default 2: one per core). Above 1 only as a superuser (see `isSuperuser`). */
  workers?: number;
}

/** Every seeded user's password: `seededUserEmail(i)` with it logs in (the hash is a real argon2id one). */
export const SEEDED_PASSWORD = 'seeded-user-password-1';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** How far back the oldest user registered. */
const HISTORY_MS = 3 * 365 * DAY;
/** Rows per COPY statement: each is its own transaction, so the server's per-statement state stays bounded. */
const ROWS_PER_BATCH = 500_000;
/** Bytes per chunk written to the COPY stream. */
const CHUNK_BYTES = 1 << 18;
/** Session states, as fractions of all sessions; the rest are live. */
const EXPIRED_SHARE = 0.25;
const REVOKED_SHARE = 0.15;

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness: a 32-bit mixer (murmur3's finaliser, a bijection), keyed per entity kind and field.

function mix(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32 random-looking bits for (key, index, field). */
const bits = (key: number, index: number, field: number) => mix(Math.imul(index, 0x9e3779b1) ^ mix(key + field));
/** A float in [0, 1) for (key, index, field). */
const unit = (key: number, index: number, field: number) => bits(key, index, field) / 2 ** 32;

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));
const hex8 = (word: number) =>
  `${HEX[word >>> 24]}${HEX[(word >>> 16) & 255]}${HEX[(word >>> 8) & 255]}${HEX[word & 255]}`;

const uuidScratch = new Uint32Array(4);

/**
 * A version-4-looking UUID, unique per (key, index < 2^32) as four words (valid until the next call): the first is
 * a bijection of the index. Random like gen_random_uuid(), so the primary keys grow the way the service's do.
 */
function uuidWords(key: number, index: number): Uint32Array {
  uuidScratch[0] = mix((index ^ key) >>> 0);
  uuidScratch[1] = (bits(key, index, 1) & 0xffff0fff) | 0x4000;
  uuidScratch[2] = (bits(key, index, 2) & 0x3fffffff) | 0x80000000;
  uuidScratch[3] = bits(key, index, 3);
  return uuidScratch;
}

/** The same UUID as text, where a row holds one in a text column (a revocation's value, an event's details). */
function uuidText(key: number, index: number): string {
  const [w0, w1, w2, w3] = uuidWords(key, index) as unknown as [number, number, number, number];
  const h1 = hex8(w1);
  const h2 = hex8(w2);
  return `${hex8(w0)}-${h1.slice(0, 4)}-${h1.slice(4)}-${h2.slice(0, 4)}-${h2.slice(4)}${hex8(w3)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The model: who registered when, which sessions they opened, how each session's refresh tokens rotated.

const FIRST = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar'];
const LAST = ['smith', 'jones', 'taylor', 'brown', 'wilson', 'evans', 'thomas', 'roberts', 'walker', 'wright'];
const DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com'];
const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36',
  'okhttp/4.12.0',
];
// Names and emails use a fixed key, so `seededUserEmail(i)` needs no state from the run that seeded them.
const NAME_KEY = 0x5eed;

const capitalised = (word: string) => word[0]?.toUpperCase() + word.slice(1);

function nameParts(index: number): [string, string] {
  const h = bits(NAME_KEY, index, 0);
  return [FIRST[h % FIRST.length] as string, LAST[(h >>> 8) % LAST.length] as string];
}

/** The email of the `index`th seeded user (0-based, below `counts.users`): unique and lower-case. */
export function seededUserEmail(index: number): string {
  const [first, last] = nameParts(index);
  return `${first}.${last}.${index}@${DOMAINS[(bits(NAME_KEY, index, 1) >>> 4) % DOMAINS.length]}`;
}

interface SeedUser {
  index: number;
  createdAt: number;
}

interface SeedSession {
  index: number;
  user: SeedUser;
  createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
  revokedAt: number | null;
  ip: string;
  userAgent: string;
  /** Its refresh tokens are [firstToken, firstToken + tokens), oldest first, each the parent of the next. */
  firstToken: number;
  tokens: number;
}

/** `total` things spread over `owners` as evenly as whole numbers allow: owner `i` has [start(i), start(i + 1)). */
const spread = (total: number, owners: number) => (i: number) => Math.floor((i * total) / owners);

class World {
  // Ids and token hashes differ from run to run, as the service's random ones would.
  readonly keys = {
    user: randomInt(2 ** 31),
    session: randomInt(2 ** 31),
    token: randomInt(2 ** 31),
    event: randomInt(2 ** 31),
  };
  readonly #tokenPrefix = randomToken();
  readonly sessionStart: (user: number) => number;
  readonly tokenStart: (session: number) => number;
  readonly sessionMaxAgeMs: number;
  readonly refreshTtlMs: number;
  readonly accessLifeMs: number;

  constructor(
    readonly counts: SeedCounts,
    config: SeedConfig,
    readonly now: number,
  ) {
    this.sessionStart = spread(counts.sessions, counts.users);
    this.tokenStart = spread(counts.refreshTokens, counts.sessions);
    this.sessionMaxAgeMs = config.sessionMaxAge * 1000;
    this.refreshTtlMs = config.refreshTokenTtl * 1000;
    this.accessLifeMs = (config.accessTokenTtl + config.clockTolerance) * 1000;
  }

  /** Users registered evenly over the history, oldest first. */
  user(index: number): SeedUser {
    const slot = (HISTORY_MS - HOUR) / this.counts.users;
    const createdAt = Math.floor(this.now - HISTORY_MS + (index + unit(this.keys.user, index, 4)) * slot);
    return { index, createdAt };
  }

  *sessionsOf(user: SeedUser): Generator<SeedSession> {
    for (let j = this.sessionStart(user.index); j < this.sessionStart(user.index + 1); j++) yield this.session(j, user);
  }

  /** A session's life: expired (opened before the last max-age), revoked, or live (both opened within it). */
  session(index: number, user: SeedUser): SeedSession {
    const key = this.keys.session;
    const state = unit(key, index, 0);
    const recent = Math.max(user.createdAt, this.now - this.sessionMaxAgeMs + MINUTE);
    const canHaveExpired = user.createdAt < this.now - this.sessionMaxAgeMs - MINUTE;
    const expired = canHaveExpired && state < EXPIRED_SHARE;
    const createdAt = expired
      ? lerp(user.createdAt, this.now - this.sessionMaxAgeMs - MINUTE, unit(key, index, 1))
      : lerp(recent, this.now - MINUTE, unit(key, index, 1));
    const expiresAt = createdAt + this.sessionMaxAgeMs;
    const revoked = !expired && state > 1 - REVOKED_SHARE;
    const revokedAt = revoked ? lerp(createdAt, this.now, unit(key, index, 2)) : null;
    const firstToken = this.tokenStart(index);
    const tokens = this.tokenStart(index + 1) - firstToken;
    // The last rotation: before the session ended, and no gap longer than a refresh token lives.
    const end = Math.min(revokedAt ?? this.now, expiresAt);
    const active = Math.min(unit(key, index, 3) * (end - createdAt), Math.max(0, tokens - 1) * 0.9 * this.refreshTtlMs);
    const h = bits(key, index, 5);
    return {
      index,
      user,
      createdAt,
      lastUsedAt: tokens > 1 ? Math.floor(createdAt + active) : createdAt,
      expiresAt,
      revokedAt,
      ip: `${1 + (h % 223)}.${(h >>> 8) & 255}.${(h >>> 16) & 255}.${1 + ((h >>> 24) % 254)}`,
      userAgent: USER_AGENTS[bits(key, index, 6) % USER_AGENTS.length] as string,
      firstToken,
      tokens,
    };
  }

  /** SHA-256, base64url (as the service stores them), of an opaque token that exists only here. */
  tokenHash(index: number): string {
    return digest('sha256', `${this.#tokenPrefix}${index}`, 'base64url');
  }

  /** When the `k`th token of the session was issued: the rotations evenly between its opening and last use. */
  issuedAt(session: SeedSession, k: number): number {
    if (session.tokens <= 1) return session.createdAt;
    return Math.floor(session.createdAt + ((session.lastUsedAt - session.createdAt) * k) / (session.tokens - 1));
  }
}

const lerp = (from: number, to: number, fraction: number) => Math.floor(from + (to - from) * fraction);

// ---------------------------------------------------------------------------------------------------------------
// Rows in COPY's binary format: uuids and times as their bytes, with no text to format here and to parse in the
// server (on 1M refresh tokens the server's COPY took 4 s instead of 10-15 s for the same rows as text).

/** The epoch of Postgres timestamps, in Unix milliseconds. */
const POSTGRES_EPOCH_MS = Date.UTC(2000, 0, 1);
const TEXT_OID = 25;
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** Writes rows into buffers of about CHUNK_BYTES; the caller takes the full ones between rows. */
class CopyOut {
  readonly #full: Buffer[] = [];
  #buffer = Buffer.allocUnsafe(2 * CHUNK_BYTES);
  #view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset, this.#buffer.byteLength);
  #size = 0;

  constructor() {
    this.raw(SIGNATURE);
    this.#int32(0); // flags
    this.#int32(0); // header extension length
  }

  /** Starts a row of `fields` fields. A row never spans two chunks: each is far shorter than a chunk's slack. */
  row(fields: number): void {
    if (this.#size >= CHUNK_BYTES) this.#cut();
    this.#view.setInt16(this.#size, fields);
    this.#size += 2;
  }

  null(): void {
    this.#int32(-1);
  }

  uuid(key: number, index: number): void {
    const words = uuidWords(key, index);
    this.#int32(16);
    for (let i = 0; i < 4; i++) this.#int32(words[i] as number);
  }

  /** ASCII only (every generated string is). */
  text(value: string): void {
    this.#int32(value.length);
    this.#ascii(value);
  }

  /** timestamptz: microseconds since 2000-01-01 UTC, as a big-endian int64. */
  time(ms: number): void {
    const micros = (ms - POSTGRES_EPOCH_MS) * 1000;
    const high = Math.floor(micros / 2 ** 32);
    this.#int32(8);
    this.#int32(high);
    this.#int32(micros - high * 2 ** 32);
  }

  timeOrNull(ms: number | null): void {
    if (ms === null) this.null();
    else this.time(ms);
  }

  int4(value: number): void {
    this.#int32(4);
    this.#int32(value);
  }

  /** jsonb: a version byte, then the JSON text. */
  json(value: string): void {
    this.#int32(value.length + 1);
    this.#buffer[this.#size++] = 1;
    this.#ascii(value);
  }

  /** Bytes written as they are: a field encoded once (with its length), or the signature. */
  raw(bytes: Buffer): void {
    this.#buffer.set(bytes, this.#size);
    this.#size += bytes.length;
  }

  /** The chunks filled since the last call. */
  take(): Buffer[] {
    return this.#full.splice(0);
  }

  /** The trailer, then every chunk left. */
  end(): Buffer[] {
    this.#view.setInt16(this.#size, -1);
    this.#size += 2;
    this.#cut();
    return this.take();
  }

  #int32(value: number): void {
    this.#view.setUint32(this.#size, value >>> 0);
    this.#size += 4;
  }

  // A loop beats Buffer#write for strings this short: no call into C++ per field.
  #ascii(value: string): void {
    for (let i = 0; i < value.length; i++) this.#buffer[this.#size + i] = value.charCodeAt(i);
    this.#size += value.length;
  }

  #cut(): void {
    this.#full.push(this.#buffer.subarray(0, this.#size));
    this.#buffer = Buffer.allocUnsafe(2 * CHUNK_BYTES);
    this.#view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset, this.#buffer.byteLength);
    this.#size = 0;
  }
}

/** A one-dimensional text[] field, encoded once: array_recv's header, then each element. */
function textArrayField(values: string[]): Buffer {
  const elements = values.map((value) => Buffer.from(value, 'latin1'));
  const size = 20 + elements.reduce((sum, element) => sum + 4 + element.length, 0);
  const field = Buffer.alloc(4 + size);
  let at = field.writeInt32BE(size, 0);
  for (const word of [1, 0, TEXT_OID, values.length, 1]) at = field.writeInt32BE(word, at);
  for (const element of elements) {
    at = field.writeInt32BE(element.length, at);
    at += element.copy(field, at);
  }
  return field;
}

const ROLES_USER = textArrayField(['user']);
// RFC 8176 methods: a password mostly, some with a second factor, a few passkeys.
const AMR = [textArrayField(['pwd']), textArrayField(['pwd', 'otp', 'mfa']), textArrayField(['pop', 'mfa'])];
const amrOf = (h: number) => AMR[h % 20 < 17 ? 0 : h % 20 < 19 ? 1 : 2] as Buffer;

interface Table {
  name: string;
  columns: string[];
  /** Writes every row of the `index`th user: the user, or its sessions, tokens, events... */
  write(world: World, out: CopyOut, index: number, passwordHash: string): void;
  /** Rows per user, roughly, to size the batches. */
  perUser(counts: SeedCounts): number;
}

const usersTable: Table = {
  name: 'users',
  columns: [
    'id',
    'email',
    'password_hash',
    'name',
    'roles',
    'token_version',
    'email_verified_at',
    'created_at',
    'updated_at',
  ],
  perUser: () => 1,
  write(world, out, i, passwordHash) {
    const user = world.user(i);
    const h = bits(NAME_KEY, i, 2);
    const [first, last] = nameParts(i);
    out.row(9);
    out.uuid(world.keys.user, i);
    out.text(seededUserEmail(i));
    out.text(passwordHash);
    if (h % 10 < 6) out.text(`${capitalised(first)} ${capitalised(last)}`);
    else out.null();
    out.raw(ROLES_USER);
    out.int4(0);
    // Most verified their address a few minutes after registering; some updated their profile since.
    out.timeOrNull((h >>> 4) % 10 < 8 ? user.createdAt + ((h >>> 8) % 30) * MINUTE : null);
    out.time(user.createdAt);
    out.time((h >>> 12) % 10 < 2 ? lerp(user.createdAt, world.now, unit(NAME_KEY, i, 3)) : user.createdAt);
  },
};

const sessionsTable: Table = {
  name: 'sessions',
  columns: ['id', 'user_id', 'created_at', 'last_used_at', 'expires_at', 'revoked_at', 'user_agent', 'ip', 'amr'],
  perUser: (counts) => counts.sessions / counts.users,
  write(world, out, i) {
    for (const s of world.sessionsOf(world.user(i))) {
      out.row(9);
      out.uuid(world.keys.session, s.index);
      out.uuid(world.keys.user, i);
      out.time(s.createdAt);
      out.time(s.lastUsedAt);
      out.time(s.expiresAt);
      out.timeOrNull(s.revokedAt);
      out.text(s.userAgent);
      out.text(s.ip);
      out.raw(amrOf(mix(s.index)));
    }
  },
};

/**
 * Each session's tokens form one rotated chain: every token but the last was used (at its child's issue), each
 * child names its parent, none outlives its session, and a revoked session's tokens are all revoked with it.
 */
const refreshTokensTable: Table = {
  name: 'refresh_tokens',
  columns: ['id', 'session_id', 'parent_id', 'token_hash', 'issued_at', 'used_at', 'expires_at', 'revoked_at'],
  perUser: (counts) => counts.refreshTokens / counts.users,
  write(world, out, i) {
    const { token, session } = world.keys;
    for (const s of world.sessionsOf(world.user(i))) {
      let issuedAt = world.issuedAt(s, 0);
      for (let k = 0; k < s.tokens; k++) {
        const t = s.firstToken + k;
        const usedAt = k + 1 < s.tokens ? world.issuedAt(s, k + 1) : null;
        out.row(8);
        out.uuid(token, t);
        out.uuid(session, s.index);
        if (k > 0) out.uuid(token, t - 1);
        else out.null();
        out.text(world.tokenHash(t));
        out.time(issuedAt);
        out.timeOrNull(usedAt);
        out.time(Math.min(issuedAt + world.refreshTtlMs, s.expiresAt));
        out.timeOrNull(s.revokedAt);
        issuedAt = usedAt ?? issuedAt;
      }
    }
  },
};

function writeEvent(
  out: CopyOut,
  id: [key: number, index: number],
  user: [key: number, index: number],
  type: string,
  at: number,
  context: { ip: string; userAgent: string } | undefined,
  details: string | null,
): void {
  out.row(7);
  out.uuid(...id);
  out.uuid(...user);
  out.text(type);
  out.time(at);
  if (context) {
    out.text(context.ip);
    out.text(context.userAgent);
  } else {
    out.null();
    out.null();
  }
  if (details === null) out.null();
  else out.json(details);
}

/** Per user: `registered` (from its first session's device), `login_succeeded` per session, `logged_out` per revoked one. */
const securityEventsTable: Table = {
  name: 'security_events',
  columns: ['id', 'user_id', 'type', 'at', 'ip', 'user_agent', 'details'],
  perUser: (counts) => 1 + (counts.sessions / counts.users) * (1 + REVOKED_SHARE),
  write(world, out, i) {
    const { event, session, user: userKey } = world.keys;
    const user = world.user(i);
    const sessions = [...world.sessionsOf(user)];
    // Event ids: 2j and 2j + 1 for session j's login and logout, 2 * sessions + i for user i's registration.
    writeEvent(
      out,
      [event, 2 * world.counts.sessions + i],
      [userKey, i],
      'registered',
      user.createdAt,
      sessions[0],
      null,
    );
    for (const s of sessions) {
      const details = `{"sessionId": "${uuidText(session, s.index)}"}`;
      writeEvent(out, [event, 2 * s.index], [userKey, i], 'login_succeeded', s.createdAt, s, details);
      if (s.revokedAt !== null) {
        writeEvent(out, [event, 2 * s.index + 1], [userKey, i], 'logged_out', s.revokedAt, s, details);
      }
    }
  },
};

/** A `sid` entry per revoked session, live for an access token's life after it: nearly all expired by now. */
const revocationsTable: Table = {
  name: 'revocations',
  columns: ['kind', 'value', 'not_before', 'min_version', 'expires_at', 'created_at'],
  perUser: (counts) => (counts.sessions / counts.users) * REVOKED_SHARE,
  write(world, out, i) {
    for (const s of world.sessionsOf(world.user(i))) {
      if (s.revokedAt === null) continue;
      out.row(6);
      out.text('sid');
      out.text(uuidText(world.keys.session, s.index));
      out.null();
      out.null();
      out.time(s.revokedAt + world.accessLifeMs);
      out.time(s.revokedAt);
    }
  },
};

/** The COPY data of users [from, to), a chunk at a time. */
function* encode(table: Table, world: World, from: number, to: number, passwordHash: string): Generator<Buffer> {
  const out = new CopyOut();
  for (let i = from; i < to; i++) {
    table.write(world, out, i, passwordHash);
    yield* out.take();
  }
  yield* out.end();
}

/** One COPY statement; the stream's backpressure paces the generator, so memory stays at a chunk or two. */
async function copyBatch(client: pg.PoolClient, table: Table, data: Iterable<Buffer>): Promise<number> {
  const copy = client.query(copyFrom(`COPY ${table.name} (${table.columns.join(', ')}) FROM STDIN (FORMAT binary)`));
  await pipeline(Readable.from(data), copy);
  return copy.rowCount;
}

// ---------------------------------------------------------------------------------------------------------------
// seedRows

interface Job {
  table: Table;
  from: number;
  to: number;
}

/** Each table's users cut into batches of about ROWS_PER_BATCH rows, tables in foreign-key order. */
function jobsFor(tables: Table[], counts: SeedCounts): Job[] {
  const jobs: Job[] = [];
  for (const table of tables) {
    const usersPerBatch = Math.max(1, Math.floor(ROWS_PER_BATCH / Math.max(table.perUser(counts), 1e-9)));
    for (let from = 0; from < counts.users; from += usersPerBatch) {
      jobs.push({ table, from, to: Math.min(counts.users, from + usersPerBatch) });
    }
  }
  return jobs;
}

/** Runs `work` over the items on `workers` connections, each taking the next item when done; an error stops all. */
async function inParallel<T>(
  pool: pg.Pool,
  items: T[],
  workers: number,
  setup: string[],
  work: (client: pg.PoolClient, item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    const client = await pool.connect();
    try {
      for (const statement of setup) await client.query(statement);
      while (!failed && next < items.length) await work(client, items[next++] as T);
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      // Destroyed, not returned to the pool: the connection carries the session settings.
      client.release(true);
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, items.length) }, worker));
}

/**
 * Superusers load with triggers off (session_replication_role = replica), which skips the foreign-key checks: the
 * rows are consistent by construction, each check costs an index probe per row, and without them two connections
 * can load tables out of order. Anyone else loads one batch at a time, in foreign-key order, with the checks.
 */
async function isSuperuser(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ super: boolean }>(
    'SELECT rolsuper AS super FROM pg_roles WHERE rolname = current_user',
  );
  return rows[0]?.super === true;
}

interface DroppedIndex {
  table: string;
  name: string;
  /** Set for a primary key: dropped and restored as the constraint. */
  constraint: string | null;
  definition: string;
}

const quoted = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Drops every index of `tables` that no foreign key depends on (all but the primary keys of users and sessions), to
 * be rebuilt by `rebuildIndexes` from their own definitions. Measured on 1M refresh tokens: COPY with all four
 * indexes in place took 83 s, with the primary key alone 22 s, with none 9.5 s, and each index's sorted build
 * afterwards a few seconds; the builds also skip 10M random-key inserts' page splits and full-page WAL images.
 */
async function dropIndexes(pool: pg.Pool, tables: string[]): Promise<DroppedIndex[]> {
  const { rows } = await pool.query<DroppedIndex>(
    `SELECT t.relname AS table, i.relname AS name, c.conname AS constraint,
            coalesce(pg_get_constraintdef(c.oid), pg_get_indexdef(x.indexrelid)) AS definition
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
     LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = t.oid
     WHERE t.relname = ANY($1) AND t.relnamespace = 'public'::regnamespace
       AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = x.indexrelid)
     ORDER BY t.relname, i.relname`,
    [tables],
  );
  for (const index of rows) {
    await pool.query(
      index.constraint
        ? `ALTER TABLE public.${quoted(index.table)} DROP CONSTRAINT ${quoted(index.constraint)}`
        : `DROP INDEX public.${quoted(index.name)}`,
    );
  }
  return rows;
}

/** Rebuilds the dropped indexes, those of the biggest tables first so the two builders finish together. */
async function rebuildIndexes(pool: pg.Pool, indexes: DroppedIndex[], workers: number, order: string[]) {
  const sorted = [...indexes].sort((a, b) => order.indexOf(a.table) - order.indexOf(b.table));
  // Sorting in memory rather than in temporary files.
  const setup = ["SET maintenance_work_mem = '512MB'"];
  await inParallel(pool, sorted, workers, setup, async (client, index) => {
    await client.query(
      index.constraint
        ? `ALTER TABLE public.${quoted(index.table)} ADD CONSTRAINT ${quoted(index.constraint)} ${index.definition}`
        : index.definition,
    );
  });
}

// Seeded emails are `first.last.N@domain`: a database that has any was seeded already, and the rebuilt unique
// index on lower(email) would fail on the duplicates a second seed makes.
const SEEDED_EMAIL = '^[a-z]+\\.[a-z]+\\.[0-9]+@(mail\\.)?example\\.(com|org|net)$';

async function assertNotSeeded(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query('SELECT email FROM users WHERE email ~ $1 LIMIT 1', [SEEDED_EMAIL]);
  if (rows.length > 0) throw new Error('seed: this database already holds seeded users; seed a fresh one');
}

function checkCounts(counts: SeedCounts): void {
  for (const [name, value] of Object.entries(counts)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`seed: ${name} must be a positive integer`);
  }
  if (counts.sessions > counts.refreshTokens) throw new Error('seed: every session needs a refresh token');
}

const thousands = (n: number) => n.toLocaleString('en-US');
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Loads `counts` users, sessions and refresh tokens (and, by default, their security events and revocations) into
 * the migrated database at `databaseUrl`, beside the rows already there, which it leaves alone. The indexes of
 * those tables (but the primary keys foreign keys need) are dropped for the load and rebuilt after it, also when it
 * fails; then VACUUM ANALYZE and a checkpoint, so the benchmark that follows meets neither stale statistics, nor an
 * autovacuum of the new rows, nor their write-back.
 */
export async function seedRows(
  databaseUrl: string,
  counts: SeedCounts,
  log: (line: string) => void,
  options: SeedOptions = {},
): Promise<void> {
  checkCounts(counts);
  const config = options.config ?? loadConfig({ NODE_ENV: 'test' });
  const started = performance.now();
  const elapsed = () => seconds(performance.now() - started);
  const tables = [usersTable, sessionsTable, refreshTokensTable];
  if (options.securityEvents ?? true) tables.push(securityEventsTable, revocationsTable);
  const names = tables.map((table) => table.name);
  const requested = Math.max(1, options.workers ?? 2);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: requested });
  try {
    await assertNotSeeded(pool);
    const superuser = await isSuperuser(pool);
    const workers = superuser ? requested : 1;
    const passwordHash = await new Passwords(config.argon2).hash(SEEDED_PASSWORD);
    const world = new World(counts, config, Date.now());
    const dropped = await dropIndexes(pool, names);
    log(`seed: ${names.join(', ')} on ${workers} connection(s), foreign-key checks ${superuser ? 'off' : 'on'}`);
    log(`seed: dropped ${dropped.map((index) => index.name).join(', ')} for the load; rebuilt after it`);
    try {
      const loaded = new Map<string, number>();
      const setup = superuser ? ['SET session_replication_role = replica'] : [];
      await inParallel(pool, jobsFor(tables, counts), workers, setup, async (client, job) => {
        const rows = await copyBatch(client, job.table, encode(job.table, world, job.from, job.to, passwordHash));
        loaded.set(job.table.name, (loaded.get(job.table.name) ?? 0) + rows);
        const range = `${thousands(job.from)}..${thousands(job.to)}`;
        log(`seed: ${job.table.name} of users ${range}: +${thousands(rows)} rows, ${elapsed()}`);
      });
      log(`seed: copied ${[...loaded].map(([name, rows]) => `${thousands(rows)} ${name}`).join(', ')} in ${elapsed()}`);
    } finally {
      // Biggest first: tables by rows per user, most first.
      const bySize = [...tables].sort((a, b) => b.perUser(counts) - a.perUser(counts)).map((table) => table.name);
      await rebuildIndexes(pool, dropped, requested, bySize);
      log(`seed: rebuilt ${dropped.length} indexes, ${elapsed()}`);
    }
    await pool.query(`VACUUM (ANALYZE) ${names.join(', ')}`);
    // Written back now rather than by a checkpoint in the middle of the measurement.
    if (superuser) await pool.query('CHECKPOINT');
    log(`seed: vacuumed and analysed${superuser ? ', checkpointed' : ''}; done in ${elapsed()}`);
  } finally {
    await pool.end();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// explainHotQueries: the service's own repository functions, run on a driver that EXPLAINs each statement instead.

/** Real rows to aim the hot queries at: a live seeded session with its live refresh token. */
interface Target {
  userId: string;
  email: string;
  sessionId: string;
  tokenId: string;
  tokenHash: string;
}

export interface Step {
  name: string;
  run(db: Executor): Promise<unknown>;
  /** Also plan what the statement runs inside a function (see explainNestedStatements). */
  nested?: boolean;
}

/**
 * The refresh path of SessionService.refresh for a live, unused token: the statements inside rotate_refresh_token
 * are planned through auto_explain (see explainingClient), each on its own line.
 */
export function refreshSteps(target: Target, at: Date): Step[] {
  const rotation = {
    tokenHash: target.tokenHash,
    at,
    childHash: sha256(randomToken()),
    childExpiresBy: new Date(at.getTime() + DAY),
  };
  return [
    // A cookie's CSRF check needs the session first (src/modules/sessions/sessions.service.ts).
    { name: "refresh (cookie): the token's session", run: (db) => findTokenOwner(db, target.tokenHash) },
    { name: 'refresh: rotate, first use', run: (db) => rotateRefreshToken(db, rotation), nested: true },
    // Presented again: inside the grace interval the child is found again by its hash.
    { name: 'refresh: rotate, presented again', run: (db) => rotateRefreshToken(db, rotation), nested: true },
  ];
}

/** GET /users/me and POST /auth/login (password, no second factor), as the services run them. */
function readAndLoginSteps(target: Target, at: Date): Step[] {
  return [
    { name: '/users/me: users by id, one batch', run: (db) => findUsersByIdsFast(db, [target.userId]) },
    { name: 'login: credentials by email', run: (db) => findCredentialsByEmail(db, target.email) },
    { name: 'login: share-lock credentials', run: (db) => lockCredentials(db, target.userId, 'share') },
    {
      name: 'login: insert session',
      run: (db) =>
        insertSession(db, {
          userId: target.userId,
          at,
          expiresAt: new Date(at.getTime() + 30 * DAY),
          ip: '203.0.113.7',
          userAgent: USER_AGENTS[0] as string,
          amr: ['pwd'],
        }),
    },
    {
      name: 'login: insert first refresh token',
      run: (db) =>
        insertRefreshToken(db, {
          sessionId: target.sessionId,
          parentId: null,
          tokenHash: sha256(randomToken()),
          issuedAt: at,
          expiresAt: new Date(at.getTime() + DAY),
        }),
    },
    {
      name: 'login: insert security event',
      run: (db) =>
        insertSecurityEvent(db, {
          type: 'login_succeeded',
          userId: target.userId,
          at,
          ip: '203.0.113.7',
          userAgent: null,
          details: { sessionId: target.sessionId },
        }),
    },
  ];
}

/** The lists (first pages, as the routes' default limit asks), the deny-list rebuild, and a logout. */
function otherSteps(target: Target, at: Date): Step[] {
  return [
    { name: 'sessions: list live', run: (db) => listLiveSessions(db, target.userId, at, 21, undefined) },
    { name: 'events: list own', run: (db) => listSecurityEvents(db, target.userId, 21, undefined) },
    { name: 'deny-list rebuild: live revocations', run: (db) => listLiveRevocations(db, at) },
    { name: 'logout: revoke session row', run: (db) => revokeSessionRow(db, target.sessionId, at) },
  ];
}

/** pruneExpired's deletes of the seeded tables. Last: they delete much of what the others read. */
function housekeepingSteps(at: Date): Step[] {
  return [
    { name: 'housekeeping: pruneSessions', run: (db) => pruneSessions(db, at, REVOKED_SESSION_RETENTION_MS) },
    { name: 'housekeeping: pruneRevocations', run: (db) => pruneRevocations(db, at) },
  ];
}

/** A live session's live refresh token, from random pages (a plain scan would find the same cached first rows). */
async function pickTarget(client: pg.ClientBase): Promise<Target> {
  const query = (sample: string) => `
    SELECT s.user_id AS "userId", u.email, s.id AS "sessionId", rt.id AS "tokenId", rt.token_hash AS "tokenHash"
    FROM refresh_tokens rt ${sample}
    JOIN sessions s ON s.id = rt.session_id
    JOIN users u ON u.id = s.user_id
    WHERE rt.used_at IS NULL AND rt.revoked_at IS NULL AND rt.expires_at > now()
      AND s.revoked_at IS NULL AND s.expires_at > now()
    LIMIT 1`;
  const sampled = await client.query<Target>(query('TABLESAMPLE SYSTEM (1)'));
  const target = sampled.rows[0] ?? (await client.query<Target>(query(''))).rows[0];
  if (!target) throw new Error('explain: no live session with a live refresh token to aim at');
  return target;
}

/**
 * auto_explain, loaded into this connection, sends the plan of every statement a function runs as a NOTICE: the
 * only way to see the plans inside rotate_refresh_token. Returns the switch, off at first (every foreign-key check
 * of a cascading delete would be a plan too), or undefined when it cannot be loaded (not a superuser).
 */
async function explainNestedStatements(
  client: pg.ClientBase,
): Promise<((on: boolean) => Promise<unknown>) | undefined> {
  try {
    await client.query("LOAD 'auto_explain'");
  } catch {
    return undefined;
  }
  for (const [name, value] of Object.entries({
    log_min_duration: '-1',
    log_analyze: 'on',
    log_buffers: 'on',
    log_nested_statements: 'on',
    log_level: 'notice',
  })) {
    await client.query(`SET auto_explain.${name} = ${value}`);
  }
  return (on) => client.query(`SET auto_explain.log_min_duration = ${on ? 0 : -1}`);
}

/** An auto_explain notice as `<query>\n<plan>`; undefined for the EXPLAIN itself (its plan is in its result). */
function nestedPlan(message: string): string | undefined {
  const lines = message.split('\n').slice(1);
  const planStart = lines.findIndex((line) => line.includes('(cost='));
  const query = lines
    .slice(0, planStart)
    // plpgsql blanks out a statement's INTO clause: squeeze the blanks it leaves.
    .map((line) => line.replace(/^ {8,}/, '    ').replace(/(\S) {2,}/g, '$1 '))
    .join('\n')
    .replace(/^Query Text: /, '');
  if (planStart < 0 || query.startsWith('EXPLAIN')) return undefined;
  return `${query}\n${lines.slice(planStart).join('\n')}`;
}

/**
 * A drizzle client that answers every statement with no rows after running it under EXPLAIN (ANALYZE, BUFFERS):
 * EXPLAIN ANALYZE executes it, so the statements of a path change the data as the path does, once each. The plans
 * of what a function runs (see explainNestedStatements) follow its own.
 */
function explainingClient(client: pg.ClientBase, plans: string[]) {
  const nested: string[] = [];
  client.on('notice', (notice) => {
    const plan = nestedPlan(notice.message ?? '');
    if (plan) nested.push(plan);
  });
  return {
    // drizzle and the service's named statements (src/db/statements.ts) both pass a query config.
    async query(config: { text: string; values?: unknown[] } | string, params?: unknown[]) {
      const text = typeof config === 'string' ? config : config.text;
      const values = params ?? (typeof config === 'string' ? [] : config.values);
      nested.length = 0;
      const explained = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, values);
      plans.push(`${text}\n${explained.rows.map((row) => row['QUERY PLAN']).join('\n')}`, ...nested);
      return { rows: [], rowCount: 0, command: '', oid: 0, fields: [] };
    },
  };
}

export interface Plan {
  name: string;
  /** The SQL, then its EXPLAIN (ANALYZE, BUFFERS) output. */
  plan: string;
}

/** Runs the steps in one transaction, rolled back; a step that sends several statements gives numbered plans. */
async function explainSteps(databaseUrl: string, stepsFor: (target: Target, at: Date) => Step[]): Promise<Plan[]> {
  const client = await connect(databaseUrl);
  try {
    const steps = stepsFor(await pickTarget(client), new Date());
    const explainNested = await explainNestedStatements(client);
    const plans: string[] = [];
    const db = drizzle({ client: explainingClient(client, plans) as never, schema }) as unknown as Database;
    const results: Plan[] = [];
    await client.query('BEGIN');
    try {
      for (const step of steps) {
        plans.length = 0;
        if (step.nested) await explainNested?.(true);
        await step.run(db);
        if (step.nested) await explainNested?.(false);
        plans.forEach((plan, i) => {
          results.push({ name: plans.length > 1 ? `${step.name} #${i + 1}` : step.name, plan });
        });
      }
    } finally {
      await client.query('ROLLBACK');
    }
    return results;
  } finally {
    await client.end();
  }
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the hot queries, aimed at a live seeded user, session and refresh token: the SQL is
 * what the repositories send (drizzle builds it here from the same functions). All in one transaction, rolled back,
 * so the writes leave nothing behind. `housekeeping` (default true) adds pruneSessions and pruneRevocations: on a
 * large backlog of dead rows these delete (then restore) millions of rows, which takes a while.
 */
export async function explainHotQueries(
  databaseUrl: string,
  options: { housekeeping?: boolean } = {},
): Promise<Plan[]> {
  return explainSteps(databaseUrl, (target, at) => [
    ...readAndLoginSteps(target, at),
    ...refreshSteps(target, at),
    ...otherSteps(target, at),
    ...(options.housekeeping === false ? [] : housekeepingSteps(at)),
  ]);
}

/** A client whose connection errors reach the query in flight, instead of an unheard 'error' event killing us. */
async function connect(databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

const BIG_TABLES = ['users', 'sessions', 'refresh_tokens', 'security_events', 'revocations'];

/** The big tables a plan reads whole: empty for a plan that reaches its rows through indexes. */
export function seqScans(plan: string): string[] {
  const scanned = [...plan.matchAll(/Seq Scan on (\w+)/g)].map((match) => match[1] as string);
  return [...new Set(scanned.filter((table) => BIG_TABLES.includes(table)))];
}

// ---------------------------------------------------------------------------------------------------------------
// Sizes, and housekeeping on the seeded data.

export interface TableSize {
  table: string;
  rows: number;
  /** pg_total_relation_size: heap, TOAST and every index. */
  totalBytes: number;
  indexes: { name: string; bytes: number }[];
}

/** Size of each big table and of each of its indexes (row counts are the planner's estimates, fresh after ANALYZE). */
export async function tableSizes(databaseUrl: string): Promise<TableSize[]> {
  const client = await connect(databaseUrl);
  try {
    const { rows } = await client.query<{ table: string; rows: string; total: string; indexes: TableSize['indexes'] }>(
      `SELECT c.relname AS table, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS total,
              coalesce((SELECT json_agg(json_build_object('name', i.relname, 'bytes', pg_relation_size(i.oid))
                                  ORDER BY i.relname)
                        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid), '[]') AS indexes
       FROM pg_class c
       WHERE c.relname = ANY($1) AND c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
       ORDER BY pg_total_relation_size(c.oid) DESC`,
      [BIG_TABLES],
    );
    return rows.map((row) => ({
      table: row.table,
      rows: Math.max(0, Number(row.rows)),
      totalBytes: Number(row.total),
      indexes: row.indexes,
    }));
  } finally {
    await client.end();
  }
}

/** Rows pruneExpired should delete. */
export interface DeadRows {
  expiredSessions: number;
  /** Revoked over REVOKED_SESSION_RETENTION_MS ago. */
  revokedSessions: number;
  expiredRefreshTokens: number;
  expiredRevocations: number;
}

async function countDead(client: pg.ClientBase, now: Date): Promise<DeadRows> {
  const cutoff = new Date(now.getTime() - REVOKED_SESSION_RETENTION_MS);
  const { rows } = await client.query<Record<keyof DeadRows, string>>(
    `SELECT (SELECT count(*) FROM sessions WHERE expires_at < $1) AS "expiredSessions",
            (SELECT count(*) FROM sessions WHERE revoked_at < $2) AS "revokedSessions",
            (SELECT count(*) FROM refresh_tokens WHERE expires_at < $1) AS "expiredRefreshTokens",
            (SELECT count(*) FROM revocations WHERE expires_at < $1) AS "expiredRevocations"`,
    [now, cutoff],
  );
  const row = rows[0] as Record<keyof DeadRows, string>;
  return {
    expiredSessions: Number(row.expiredSessions),
    revokedSessions: Number(row.revokedSessions),
    expiredRefreshTokens: Number(row.expiredRefreshTokens),
    expiredRevocations: Number(row.expiredRevocations),
  };
}

/**
 * The batched prune this benchmark proposes for pruneSessions/pruneRevocations: the same rows, deleted a few
 * thousand at a time, each batch its own short statement (under the pool's 5 s statement_timeout, holding few
 * locks, skipping rows a refresh holds), counted by rowCount instead of RETURNING every id into memory. `$1` is the
 * time before which a row is dead (`now`, or `now - retention` for revoked sessions), `$2` the batch size. Each
 * subquery is planned on an index (revoked sessions on sessions_revoked_at_idx).
 */
export const BATCHED_PRUNE: { name: string; retention: boolean; sql: string }[] = [
  {
    name: 'expired sessions',
    retention: false,
    sql: 'DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)',
  },
  {
    name: 'revoked sessions',
    retention: true,
    sql: 'DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE revoked_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)',
  },
  {
    name: 'expired refresh tokens',
    retention: false,
    sql: `DELETE FROM refresh_tokens WHERE id IN
            (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
  },
  {
    name: 'expired revocations',
    retention: false,
    sql: 'DELETE FROM revocations WHERE id IN (SELECT id FROM revocations WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)',
  },
];
const PRUNE_BATCH = 5_000;

export interface BatchTiming {
  name: string;
  rows: number;
  batches: number;
  ms: number;
  /** The slowest batch: what a concurrent request could wait behind, at worst. */
  slowestMs: number;
}

async function batchedPrune(client: pg.ClientBase, now: Date): Promise<BatchTiming[]> {
  const cutoff = new Date(now.getTime() - REVOKED_SESSION_RETENTION_MS);
  const timings: BatchTiming[] = [];
  for (const { name, retention, sql } of BATCHED_PRUNE) {
    const timing = { name, rows: 0, batches: 0, ms: 0, slowestMs: 0 };
    for (;;) {
      const started = performance.now();
      const { rowCount } = await client.query(sql, [retention ? cutoff : now, PRUNE_BATCH]);
      const ms = performance.now() - started;
      timing.rows += rowCount ?? 0;
      timing.batches++;
      timing.ms += ms;
      timing.slowestMs = Math.max(timing.slowestMs, ms);
      if ((rowCount ?? 0) < PRUNE_BATCH) break;
    }
    timings.push(timing);
  }
  return timings;
}

export interface HousekeepingReport {
  before: DeadRows;
  /** pruneExpired as the service runs it: its own pool, with the service's 5 s statement_timeout. */
  service?: { ms: number; deleted?: Record<string, number>; error?: string };
  /** BATCHED_PRUNE, run when the service's prune left dead rows behind (it failed) or was skipped. */
  batched?: BatchTiming[];
  after: DeadRows;
  /** Dead tuples the deletes left for vacuum, and the sizes before the prune, after it, and after a VACUUM. */
  tables: { table: string; deadTuples: number; bytesBefore: number; bytesAfter: number; bytesVacuumed: number }[];
  vacuumMs: number;
  /** The prune's plans once nothing is left to prune: what every later (hourly) run costs. */
  steadyPlans: Plan[];
}

const pruned = (dead: DeadRows) => Object.values(dead).every((count) => count === 0);

/**
 * DESTRUCTIVE (run it after the measurements): deletes the seeded dead rows with the service's own pruneExpired,
 * times it, and checks that nothing it should have deleted is left. If the service's prune fails or leaves rows
 * (a statement timeout, say), or `service: false`, runs BATCHED_PRUNE, the proposed fix. Then VACUUM, to show what
 * it reclaims, and the plans of the next, steady-state, prune.
 */
export async function checkHousekeeping(
  databaseUrl: string,
  log: (line: string) => void,
  options: { service?: boolean } = {},
): Promise<HousekeepingReport> {
  const client = await connect(databaseUrl);
  try {
    const now = new Date();
    const before = await countDead(client, now);
    const sizesBefore = await tableSizes(databaseUrl);
    log(`housekeeping: dead before ${JSON.stringify(before)}`);
    const service = options.service === false ? undefined : await servicePrune(databaseUrl, now);
    if (service) {
      const outcome = service.error ? `FAILED (${service.error.split('\n')[0]})` : 'ok';
      log(`housekeeping: the service's pruneExpired ${outcome} in ${seconds(service.ms)}`);
    }
    let after = await countDead(client, now);
    let batched: BatchTiming[] | undefined;
    if (!pruned(after)) {
      batched = await batchedPrune(client, now);
      for (const b of batched) {
        const slowest = `slowest ${Math.round(b.slowestMs)} ms`;
        log(
          `housekeeping: batched ${b.name}: ${thousands(b.rows)} rows, ${b.batches} batches, ${seconds(b.ms)}, ${slowest}`,
        );
      }
      after = await countDead(client, now);
    }
    log(`housekeeping: dead after ${JSON.stringify(after)}`);
    const { tables, vacuumMs } = await vacuumAndMeasure(client, databaseUrl, sizesBefore);
    const steadyPlans = await explainSteps(databaseUrl, (_target, at) => housekeepingSteps(at));
    return {
      before,
      ...(service ? { service } : {}),
      ...(batched ? { batched } : {}),
      after,
      tables,
      vacuumMs,
      steadyPlans,
    };
  } finally {
    await client.end();
  }
}

/** Dead tuples left by the prune, and each table's size before it, after it, and after a VACUUM. */
async function vacuumAndMeasure(client: pg.ClientBase, databaseUrl: string, sizesBefore: TableSize[]) {
  const dead = await client.query<{ table: string; dead: string }>(
    'SELECT relname AS table, n_dead_tup AS dead FROM pg_stat_user_tables WHERE relname = ANY($1)',
    [BIG_TABLES],
  );
  const sizesAfter = await tableSizes(databaseUrl);
  const vacuumStarted = performance.now();
  await client.query(`VACUUM (ANALYZE) ${BIG_TABLES.join(', ')}`);
  const vacuumMs = performance.now() - vacuumStarted;
  const sizesVacuumed = await tableSizes(databaseUrl);
  const bytes = (sizes: TableSize[], table: string) => sizes.find((size) => size.table === table)?.totalBytes ?? 0;
  const tables = BIG_TABLES.map((table) => ({
    table,
    deadTuples: Number(dead.rows.find((row) => row.table === table)?.dead ?? 0),
    bytesBefore: bytes(sizesBefore, table),
    bytesAfter: bytes(sizesAfter, table),
    bytesVacuumed: bytes(sizesVacuumed, table),
  }));
  return { tables, vacuumMs };
}

async function servicePrune(databaseUrl: string, now: Date): Promise<HousekeepingReport['service']> {
  const handle = await openPostgres(databaseUrl, () => undefined);
  const started = performance.now();
  try {
    const deleted = { ...(await pruneExpired(handle.db, now)) };
    return { ms: performance.now() - started, deleted };
  } catch (error) {
    return { ms: performance.now() - started, error: (error as Error).message };
  } finally {
    await handle.close();
  }
}
