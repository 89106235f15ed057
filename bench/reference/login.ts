// Reference (c): one argon2id verification at the service's parameters (loadConfig's defaults, as the service runs
// in the benchmark) and one RS256 signature per request. The ceiling of POST /auth/login.
import argon2 from 'argon2';
import { loadConfig } from '../../src/config.js';
import { accessTokenPayload, listenAndAnnounce, referenceApp } from './common.js';

const password = process.env.BENCH_PASSWORD;
if (!password) throw new Error('BENCH_PASSWORD is not set (the reference servers are started by bench/run.ts)');
const { argon2: parameters } = loadConfig({});
const hash = await argon2.hash(password, { ...parameters, type: argon2.argon2id });

const app = await referenceApp();
app.post<{ Body: { password?: unknown } }>('/login', async (request, reply) => {
  const presented = typeof request.body?.password === 'string' ? request.body.password : '';
  if (!(await argon2.verify(hash, presented))) return reply.code(401).send({ error: 'wrong password' });
  return { accessToken: app.jwt.sign(accessTokenPayload()) };
});
await listenAndAnnounce(app);
