// When a signing key may be retired (deleted from KEYS_DIR, so unpublished): the one rule, used by keys:retire.
import type { KeyRing, SigningKey } from './key-ring.js';

export type RetirementVerdict =
  | { key: SigningKey; retirable: true; supersededAt: number; tokensExpiredAt: number }
  | { key: SigningKey; retirable: false; reason: 'active' | 'pending' | 'tokens-alive'; retirableAt?: number };

/**
 * Each key's verdict at `now`. A key stops signing when the next key in activation order activates (it is then
 * "superseded"); the last token it signed expires `tokenLifetimeMs` later (ACCESS_TOKEN_TTL plus CLOCK_TOLERANCE, the
 * skew verifiers allow past `exp`). Only then may it go: never the active key, never a key not yet activated, never
 * a key whose tokens may still be accepted somewhere.
 */
export function retirementVerdicts(ring: KeyRing, now: number, tokenLifetimeMs: number): RetirementVerdict[] {
  const active = ring.active;
  return ring.keys.map((key, index): RetirementVerdict => {
    if (key.kid === active.kid) return { key, retirable: false, reason: 'active' };
    if (key.activatesAt > now) return { key, retirable: false, reason: 'pending' };
    // ring.keys is in activation order, so the next key is the one that took over; it has activated, since the
    // active key (which has) comes after this one.
    const successor = ring.keys[index + 1] as SigningKey;
    const supersededAt = successor.activatesAt;
    const tokensExpiredAt = supersededAt + tokenLifetimeMs;
    if (now <= tokensExpiredAt) return { key, retirable: false, reason: 'tokens-alive', retirableAt: tokensExpiredAt };
    return { key, retirable: true, supersededAt, tokensExpiredAt };
  });
}
