// The key ring in use: an immutable KeyRing, replaced whole when KEYS_DIR changes, so no reader sees half a change.
import path from 'node:path';
import type { KeyRing, PublicJwk, SigningKey } from './key-ring.js';

/** Readies something for a ring before it takes over (e.g. a signer per new key); throwing cancels the swap. */
export type RingPreparer = (next: KeyRing) => Promise<void>;

export class LiveKeyRing {
  #ring: KeyRing;
  readonly #preparers: RingPreparer[] = [];

  constructor(ring: KeyRing) {
    this.#ring = ring;
  }

  /** The ring now; hold on to it (not to this object's members one by one) to read one consistent ring. */
  get current(): KeyRing {
    return this.#ring;
  }

  get active(): SigningKey {
    return this.#ring.active;
  }

  get keys(): readonly SigningKey[] {
    return this.#ring.keys;
  }

  find(kid: unknown): SigningKey | undefined {
    return this.#ring.find(kid);
  }

  jwks(): { keys: PublicJwk[] } {
    return this.#ring.jwks();
  }

  /** Runs `prepare` on every later ring before it replaces the current one. */
  beforeReplace(prepare: RingPreparer): void {
    this.#preparers.push(prepare);
  }

  /** Prepares `next` (every preparer, in order), then makes it current in one assignment. */
  async replace(next: KeyRing): Promise<void> {
    for (const prepare of this.#preparers) await prepare(next);
    this.#ring = next;
  }
}

/** What a reload changed, for the log. */
export interface RingChange {
  added: string[];
  removed: string[];
  /** Kids whose activation time changed in keys.json. */
  rescheduled: string[];
}

/** The difference between two rings, by kid and activation time; undefined when they are the same. */
export function ringChange(from: KeyRing, to: KeyRing): RingChange | undefined {
  const before = new Map(from.keys.map((key) => [key.kid, key.activatesAt]));
  const after = new Map(to.keys.map((key) => [key.kid, key.activatesAt]));
  const change: RingChange = {
    added: [...after.keys()].filter((kid) => !before.has(kid)),
    removed: [...before.keys()].filter((kid) => !after.has(kid)),
    rescheduled: [...after].filter(([kid, at]) => before.has(kid) && before.get(kid) !== at).map(([kid]) => kid),
  };
  const changed = change.added.length + change.removed.length + change.rescheduled.length > 0;
  return changed ? change : undefined;
}

export type ReloadOutcome =
  | { status: 'unchanged' }
  | { status: 'replaced'; change: RingChange }
  | { status: 'failed'; error: Error };

/**
 * Loads the folder again and, when it differs, replaces the live ring. Never throws: a folder that does not load
 * (a bad or half-copied file, no key left) keeps the last good ring, and the outcome carries the error.
 */
export async function reloadKeyRing(live: LiveKeyRing, load: () => Promise<KeyRing>): Promise<ReloadOutcome> {
  try {
    const next = await load();
    const change = ringChange(live.current, next);
    if (!change) return { status: 'unchanged' };
    await live.replace(next);
    return { status: 'replaced', change };
  } catch (error) {
    return { status: 'failed', error: error instanceof Error ? error : new Error(String(error)) };
  }
}

/** A ring's keys for the log: kid, file and activation time (never key material). */
export function describeKeys(ring: KeyRing): { kid: string; file: string; activatesAt: string }[] {
  return ring.keys.map((key) => ({
    kid: key.kid,
    file: path.basename(key.file),
    // 0: no time recorded in keys.json, so active since ever.
    activatesAt: key.activatesAt === 0 ? 'always' : new Date(key.activatesAt).toISOString(),
  }));
}
