// Passkeys (WebAuthn Level 3, discoverable credentials, user verification required): registration by a signed-in
// user, and a sign-in that opens a session with `amr` pop+mfa (a passkey is a second factor in itself). Every
// challenge is kept server-side, lives 300 s and is consumed by its first presentation, right or wrong, under its
// row lock; every failure is one answer, 401 PASSKEY_INVALID.
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
  VerifiedAuthenticationResponse,
  VerifiedRegistrationResponse,
} from '@simplewebauthn/server';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Config, EmailVerification } from '../../config.js';
import type { Database } from '../../db/client.js';
import { EmailNotVerified, NotFound, PasskeyInvalid } from '../../errors.js';
import { decodeCursor, paginate } from '../../lib/cursor.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { Principal } from '../../plugins/authenticate.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import { AMR, type IssuedTokens, type SessionService } from '../sessions/sessions.service.js';
import { findUserById, lockCredentials, toUser } from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';
import {
  type ChallengeRow,
  deletePasskey,
  findPasskeyByCredentialId,
  insertChallenge,
  insertPasskey,
  listCredentialDescriptors,
  listPasskeys,
  lockLoginChallenge,
  lockPasskey,
  lockRegistrationChallenge,
  markChallengeUsed,
  type PasskeyRow,
  recordPasskeyUse,
} from './passkeys.repository.js';
import type { Passkey, PasskeyList } from './passkeys.schemas.js';

// Loaded on the first passkey ceremony, not at boot: the library and its CBOR/ASN.1 stack cost about 0.6 s of CPU
// and some 12 MB of heap in every process, most of which never sees a passkey. Node caches the module after that.
const loadWebAuthn = () => import('@simplewebauthn/server');

/** Contract: challenges live 300 s. The ceremony's own timeout is the same, so the browser gives up with it. */
export const WEBAUTHN_CHALLENGE_TTL_SECONDS = 300;
// EdDSA, ES256, RS256: offered at registration and accepted at its verification.
const SUPPORTED_ALGORITHMS = [-8, -7, -257];

export interface PasskeyServiceDeps {
  db: Database;
  sessions: SessionService;
  config: Pick<Config, 'webauthn'>;
  emailVerification: EmailVerification;
  clock: Clock;
  log: FastifyBaseLogger;
}

type LoginOutcome =
  | { kind: 'issued'; user: User; tokens: IssuedTokens }
  | { kind: 'invalid'; reason: string }
  | { kind: 'unverified' };

export const toPasskey = (row: PasskeyRow): Passkey => ({
  id: row.id,
  name: row.name,
  createdAt: row.createdAt.toISOString(),
  lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
});

/** The WebAuthn user handle of a user: the 16 bytes of its id (no personal data, and stable). */
export function userHandleOf(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId.replaceAll('-', ''), 'hex'));
}

const fromBase64url = (value: string) => new Uint8Array(Buffer.from(value, 'base64url'));

/** The challenge the client signed, read from its clientDataJSON (verified later); undefined when unreadable. */
function clientChallengeOf(clientDataJSON: string): string | undefined {
  try {
    const clientData: unknown = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'));
    const challenge = (clientData as { challenge?: unknown } | null)?.challenge;
    return typeof challenge === 'string' && challenge.length > 0 && challenge.length <= 1024 ? challenge : undefined;
  } catch {
    return undefined;
  }
}

export class PasskeyService {
  constructor(private readonly deps: PasskeyServiceDeps) {}

  /** Creation options for the caller (its passkeys excluded); the challenge is stored for `register`. */
  async registrationOptions(principal: Principal): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const { db, config, clock } = this.deps;
    const user = await findUserById(db, principal.userId);
    if (!user) throw new NotFound('User not found');
    const existing = await listCredentialDescriptors(db, user.id);
    const options = await (await loadWebAuthn()).generateRegistrationOptions({
      rpName: config.webauthn.rpId,
      rpID: config.webauthn.rpId,
      userName: user.email,
      userID: userHandleOf(user.id),
      userDisplayName: user.name ?? user.email,
      timeout: WEBAUTHN_CHALLENGE_TTL_SECONDS * 1000,
      attestationType: 'none',
      excludeCredentials: existing.map((passkey) => ({ id: passkey.credentialId, transports: passkey.transports })),
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
      supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
    });
    const at = new Date(clock.now());
    await insertChallenge(db, {
      purpose: 'register',
      userId: user.id,
      challenge: options.challenge,
      at,
      expiresAt: new Date(at.getTime() + WEBAUTHN_CHALLENGE_TTL_SECONDS * 1000),
    });
    return options;
  }

  /**
   * Verifies an attestation against a live registration challenge of the caller (consumed, whatever the outcome)
   * and stores the credential. A credential id already registered, to anyone, is refused.
   */
  async register(
    principal: Principal,
    input: { response: RegistrationResponseJSON; name?: string | null },
    context: RequestContext,
  ): Promise<Passkey> {
    const { db, config, clock, log } = this.deps;
    const challenge = clientChallengeOf(input.response.response.clientDataJSON);
    if (!challenge) throw new PasskeyInvalid();
    const name = input.name?.trim() || null;
    const outcome = await db.transaction(async (tx) => {
      const user = await lockCredentials(tx, principal.userId, 'share');
      if (!user) return { kind: 'invalid' as const, reason: 'no_user' };
      const row = await lockRegistrationChallenge(tx, user.id, challenge);
      const at = new Date(clock.now());
      if (!row || !this.#live(row)) return { kind: 'invalid' as const, reason: 'challenge' };
      await markChallengeUsed(tx, row.id, at);
      let verification: VerifiedRegistrationResponse;
      try {
        verification = await (await loadWebAuthn()).verifyRegistrationResponse({
          response: input.response,
          expectedChallenge: row.challenge,
          expectedOrigin: config.webauthn.origins,
          expectedRPID: config.webauthn.rpId,
          requireUserPresence: true,
          requireUserVerification: true,
          supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
        });
      } catch (error) {
        return { kind: 'invalid' as const, reason: (error as Error).message };
      }
      if (!verification.verified) return { kind: 'invalid' as const, reason: 'not_verified' };
      const info = verification.registrationInfo;
      const passkey = await insertPasskey(tx, {
        userId: user.id,
        credentialId: info.credential.id,
        publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
        counter: info.credential.counter,
        transports: info.credential.transports ?? [],
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
        name,
        at,
      });
      if (!passkey) return { kind: 'invalid' as const, reason: 'credential_taken' };
      await recordSecurityEvent(tx, log, {
        type: 'passkey_added',
        userId: user.id,
        context,
        at,
        details: { passkeyId: passkey.id, sessionId: principal.sessionId, deviceType: info.credentialDeviceType },
      });
      return { kind: 'added' as const, passkey };
    });
    if (outcome.kind === 'invalid') {
      log.info({ userId: principal.userId, reason: outcome.reason }, 'passkey registration refused');
      throw new PasskeyInvalid();
    }
    return toPasskey(outcome.passkey);
  }

  async list(principal: Principal, query: { limit: number; cursor?: string }): Promise<PasskeyList> {
    const rows = await listPasskeys(this.deps.db, principal.userId, query.limit + 1, decodeCursor(query.cursor));
    const page = paginate(rows, query.limit, (row) => ({ at: row.createdAt, id: row.id }));
    return { items: page.rows.map(toPasskey), nextCursor: page.nextCursor };
  }

  /** Removes one of the caller's passkeys; 404 for anyone else's (or none). */
  async remove(principal: Principal, id: string, context: RequestContext): Promise<void> {
    const { db, clock, log } = this.deps;
    await db.transaction(async (tx) => {
      if (!(await deletePasskey(tx, principal.userId, id))) throw new NotFound('Passkey not found');
      await recordSecurityEvent(tx, log, {
        type: 'passkey_removed',
        userId: principal.userId,
        context,
        at: new Date(clock.now()),
        details: { passkeyId: id, sessionId: principal.sessionId },
      });
    });
  }

  /** Request options for any discoverable credential of this RP; the challenge is stored under a new id. */
  async loginOptions(): Promise<{ challengeId: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const { db, config, clock } = this.deps;
    const options = await (await loadWebAuthn()).generateAuthenticationOptions({
      rpID: config.webauthn.rpId,
      allowCredentials: [],
      userVerification: 'required',
      timeout: WEBAUTHN_CHALLENGE_TTL_SECONDS * 1000,
    });
    const at = new Date(clock.now());
    const challengeId = await insertChallenge(db, {
      purpose: 'login',
      userId: null,
      challenge: options.challenge,
      at,
      expiresAt: new Date(at.getTime() + WEBAUTHN_CHALLENGE_TTL_SECONDS * 1000),
    });
    return { challengeId, options };
  }

  /**
   * A sign-in with a passkey. In one transaction: the challenge is consumed under its lock (a replay finds it used),
   * the user is share-locked (a role change or deletion waits, or was first), the passkey row locked, the assertion
   * verified with its public key and counter, the counter and last use written and the session opened. A failure
   * commits the consumed challenge and answers 401 PASSKEY_INVALID.
   */
  async login(
    input: { challengeId: string; response: AuthenticationResponseJSON },
    context: RequestContext,
  ): Promise<{ user: User; tokens: IssuedTokens }> {
    const { db, sessions, config, emailVerification, clock, log } = this.deps;
    const outcome = await db.transaction(async (tx): Promise<LoginOutcome> => {
      const challenge = await lockLoginChallenge(tx, input.challengeId);
      const at = new Date(clock.now());
      if (!challenge || !this.#live(challenge)) return { kind: 'invalid', reason: 'challenge' };
      await markChallengeUsed(tx, challenge.id, at);
      const found = await findPasskeyByCredentialId(tx, input.response.id);
      if (!found) return { kind: 'invalid', reason: 'unknown_credential' };
      // The lock order of every session writer: the user first.
      const user = await lockCredentials(tx, found.userId, 'share');
      const passkey = user ? await lockPasskey(tx, found.id) : undefined;
      if (!user || !passkey) return { kind: 'invalid', reason: 'unknown_credential' };
      const failed = async (reason: string): Promise<LoginOutcome> => {
        await recordSecurityEvent(tx, log, {
          type: 'login_failed',
          userId: user.id,
          context,
          at,
          details: { method: 'passkey', passkeyId: passkey.id, reason: 'passkey_invalid' },
        });
        return { kind: 'invalid', reason };
      };
      const handle = input.response.response.userHandle;
      if (handle && handle !== Buffer.from(userHandleOf(user.id)).toString('base64url')) {
        return failed('user_handle');
      }
      let verification: VerifiedAuthenticationResponse;
      try {
        verification = await (await loadWebAuthn()).verifyAuthenticationResponse({
          response: input.response,
          expectedChallenge: challenge.challenge,
          expectedOrigin: config.webauthn.origins,
          expectedRPID: config.webauthn.rpId,
          credential: {
            id: passkey.credentialId,
            publicKey: fromBase64url(passkey.publicKey),
            counter: passkey.counter,
            transports: passkey.transports,
          },
          requireUserVerification: true,
        });
      } catch (error) {
        return failed((error as Error).message);
      }
      const { newCounter, credentialBackedUp, userVerified } = verification.authenticationInfo;
      if (!verification.verified || !userVerified) return failed('not_verified');
      // A clone gives itself away by a counter that did not move forward (the library checks it too).
      if ((newCounter > 0 || passkey.counter > 0) && newCounter <= passkey.counter) return failed('counter');
      // Only now, with the passkey proven: the answer tells nothing to someone without it.
      if (emailVerification === 'required' && user.emailVerifiedAt === null) return { kind: 'unverified' };
      await recordPasskeyUse(tx, passkey.id, { counter: newCounter, backedUp: credentialBackedUp, at });
      const tokens = await sessions.start(tx, user, context, AMR.passkey);
      await recordSecurityEvent(tx, log, {
        type: 'passkey_login',
        userId: user.id,
        context,
        at,
        details: { passkeyId: passkey.id, sessionId: tokens.sessionId },
      });
      await recordSecurityEvent(tx, log, {
        type: 'login_succeeded',
        userId: user.id,
        context,
        at,
        details: { sessionId: tokens.sessionId, method: 'passkey' },
      });
      return { kind: 'issued', user: toUser(user), tokens };
    });
    if (outcome.kind === 'unverified') throw new EmailNotVerified();
    if (outcome.kind === 'invalid') {
      log.info({ ip: context.ip, reason: outcome.reason }, 'passkey sign-in refused');
      throw new PasskeyInvalid();
    }
    return outcome;
  }

  #live(challenge: ChallengeRow): boolean {
    return challenge.usedAt === null && challenge.expiresAt.getTime() > this.deps.clock.now();
  }
}
