// Shared by the reference servers: bare Fastify 5 with the logger off, and @fastify/jwt holding the service's own
// signing key with the service's own sign and verify options (src/plugins/access-tokens.ts), but with the
// verified-token cache off, so every request does a real signature verification. What a reference route costs is
// what the machine charges for that one operation plus the HTTP around it: a ceiling for the service's route.
import { readFileSync } from 'node:fs';
import fastifyJwt from '@fastify/jwt';
import Fastify, { type FastifyInstance } from 'fastify';
import { toSigningKey } from '../../src/keys/key-ring.js';
import { uuidv7 } from '../../src/lib/ids.js';
import { announceReady, exitWithParent } from '../child.js';

/** Set by the runner: the service's key file, issuer and audience, so tokens are the same size and claims. */
export interface ReferenceEnv {
  keyFile: string;
  issuer: string;
  audience: string;
  accessTokenTtl: number;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the reference servers are started by bench/run.ts)`);
  return value;
}

export function referenceEnv(): ReferenceEnv {
  return {
    keyFile: required('BENCH_KEY_FILE'),
    issuer: required('BENCH_ISSUER'),
    audience: required('BENCH_AUDIENCE'),
    accessTokenTtl: Number(required('BENCH_ACCESS_TOKEN_TTL')),
  };
}

export async function referenceApp(): Promise<FastifyInstance> {
  exitWithParent();
  const env = referenceEnv();
  const key = toSigningKey(readFileSync(env.keyFile, 'utf8'), env.keyFile, 0);
  if (key.alg !== 'RS256') throw new Error(`${env.keyFile}: expected an RS256 key, found ${key.alg}`);
  const app = Fastify({ logger: false });
  await app.register(fastifyJwt, {
    secret: { private: key.privateKeyPem, public: key.publicKeyPem },
    sign: {
      algorithm: 'RS256',
      kid: key.kid,
      header: { alg: 'RS256', typ: 'at+jwt' },
      iss: env.issuer,
      aud: env.audience,
      expiresIn: env.accessTokenTtl,
    },
    verify: {
      algorithms: ['RS256'],
      allowedIss: env.issuer,
      allowedAud: env.audience,
      checkTyp: 'at+jwt',
      requiredClaims: ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid', 'roles', 'ver', 'amr'],
      allowedCritHeaders: [],
      // The point of this reference: one RSA verification per request, never a cache hit.
      cache: false,
    },
  });
  return app;
}

/** The claims the service puts in an access token (besides iss, aud and exp, which come from the sign options). */
export function accessTokenPayload(): Record<string, unknown> {
  const nowMs = Date.now();
  return {
    sub: uuidv7(nowMs),
    iat: Math.floor(nowMs / 1000),
    jti: uuidv7(nowMs),
    sid: uuidv7(nowMs),
    roles: ['user'],
    ver: 0,
    amr: ['pwd'],
  };
}

export async function listenAndAnnounce(app: FastifyInstance): Promise<void> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  announceReady(app);
}
