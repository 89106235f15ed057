// No enumeration (contract: Accounts, v1.1): the mail request routes answer a known and an unknown address the same
// way: status, body, headers, recorded events and time. POST /auth/email to a registered address answers like a free
// one and mails the registered address nothing.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { and, eq, sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import t from 'tap';
import type { App } from '../../../src/app.js';
import { type SecurityEventType, securityEvents } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { freePort } from '../../helpers/server-process.js';
import { bearer, login, register, STRONG_PASSWORD, uniqueEmail } from '../../helpers/session-flow.js';
import { startSmtpSink } from '../../helpers/smtp.js';

const smtp = await startSmtpSink(t);
// Limits on (so the request path does its real work: the budget counters in Redis), with budgets this file never
// reaches.
const { app } = await buildTestApp(t, {
  env: {
    SMTP_URL: smtp.url,
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_MAIL_PER_IP: '100000',
    RATE_LIMIT_MAIL_PER_EMAIL: '100000',
  },
});

// Timed on an app of its own that writes mail to its outbox: the request path is the same as with SMTP, and the
// in-process SMTP sink (~100 ms a message here) would only slow the run down and add noise between the requests.
const timed = await buildTestApp(t, {
  env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_MAIL_PER_IP: '100000', RATE_LIMIT_MAIL_PER_EMAIL: '100000' },
});

const ROUTES = [
  { url: '/auth/verify-email/request', event: 'verification_sent' },
  { url: '/auth/password-reset/request', event: 'password_reset_requested' },
] as const satisfies readonly { url: string; event: SecurityEventType }[];

// Headers whose values legitimately differ between two answers: the time, the request id, and the budget's reset.
const VARYING_VALUES = new Set(['date', 'x-request-id', 'x-ratelimit-reset']);

/** Header names (all) and values (but the varying ones) of a response, for comparison. */
function comparableHeaders(response: LightMyRequestResponse) {
  const names = Object.keys(response.headers).sort();
  const values = Object.fromEntries(
    names.filter((name) => !VARYING_VALUES.has(name)).map((name) => [name, response.headers[name]]),
  );
  return { names, values };
}

let host = 0;
/** Each pair of compared requests from its own address, so the per-IP counters (and their headers) match too. */
const nextAddress = () => `10.77.${Math.floor(++host / 250)}.${host % 250}`;

function requestMail(target: App, url: string, email: string, remoteAddress: string) {
  return target.inject({
    method: 'POST',
    url,
    payload: { email },
    remoteAddress,
    headers: { 'user-agent': 'enumeration-test' },
  });
}

async function eventsFor(type: SecurityEventType, email: string) {
  return app.db
    .select()
    .from(securityEvents)
    .where(and(eq(securityEvents.type, type), sql`${securityEvents.details}->>'email' = ${email}`));
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

for (const route of ROUTES) {
  t.test(`${route.url}: a known and an unknown address get the same answer and the same event`, async (t) => {
    const known = await register(app);
    await app.accounts.settled();
    const unknown = uniqueEmail('nobody');
    const mailsBefore = smtp.to(known.email).length;
    const eventsBefore = (await eventsFor(route.event, known.email)).length;

    const address = nextAddress();
    const forKnown = await requestMail(app, route.url, known.email, address);
    const forUnknown = await requestMail(app, route.url, unknown, nextAddress());

    t.equal(forKnown.statusCode, 202, 'known: 202');
    t.equal(forUnknown.statusCode, 202, 'unknown: 202');
    t.equal(forKnown.body, '{}', 'known: body {}');
    t.equal(forUnknown.body, forKnown.body, 'the same body, byte for byte');
    const knownHeaders = comparableHeaders(forKnown);
    const unknownHeaders = comparableHeaders(forUnknown);
    t.same(unknownHeaders.names, knownHeaders.names, 'the same header names');
    t.same(unknownHeaders.values, knownHeaders.values, 'the same header values (but date, request id, reset)');
    t.ok(knownHeaders.names.includes('x-ratelimit-remaining'), 'the budget headers are there (limits are on)');

    await app.accounts.settled();
    const knownEvents = (await eventsFor(route.event, known.email)).slice(eventsBefore);
    const unknownEvents = await eventsFor(route.event, unknown);
    t.equal(knownEvents.length, 1, `known: one ${route.event} event`);
    t.equal(unknownEvents.length, 1, `unknown: one ${route.event} event`);
    const shape = (event: (typeof knownEvents)[number] | undefined) => ({
      type: event?.type,
      ip: event?.ip === undefined ? undefined : typeof event.ip,
      userAgent: event?.userAgent,
      detailKeys: Object.keys(event?.details ?? {}).sort(),
    });
    t.same(shape(unknownEvents[0]), shape(knownEvents[0]), 'the two events have the same shape');
    t.equal(knownEvents[0]?.ip, address, 'the event records the client address');

    t.equal(smtp.to(known.email).length, mailsBefore + 1, 'the known address got its link');
    t.equal(smtp.to(unknown).length, 0, 'the unknown address got nothing');
  });
}

const WARM_UP = 10;
const SAMPLES = 40;

for (const route of ROUTES) {
  t.test(`${route.url}: a known and an unknown address are answered in the same time`, async (t) => {
    const server = await listening(timed.app);
    const known = await register(timed.app);
    await timed.app.accounts.settled();
    const unknown = uniqueEmail('nobody');
    const outbox = path.join(timed.dataDir, 'outbox');
    const mailsBefore = await countFiles(outbox);

    const timeOne = async (email: string) => {
      const started = process.hrtime.bigint();
      const response = await fetch(`${server}${route.url}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email }),
      });
      await response.arrayBuffer();
      const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
      if (response.status !== 202) throw new Error(`${route.url}: ${response.status}`);
      // The deferred work (lookup, token, event, mail) is not measured, and must not overlap the next request.
      await new Promise((resolve) => setImmediate(resolve));
      await timed.app.accounts.settled();
      return elapsed;
    };

    for (let i = 0; i < WARM_UP; i++) {
      await timeOne(known.email);
      await timeOne(unknown);
    }
    const knownTimes: number[] = [];
    const unknownTimes: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      // Alternating which goes first, so neither always runs right after the other's deferred work.
      if (i % 2 === 0) {
        knownTimes.push(await timeOne(known.email));
        unknownTimes.push(await timeOne(unknown));
      } else {
        unknownTimes.push(await timeOne(unknown));
        knownTimes.push(await timeOne(known.email));
      }
    }
    const knownMedian = median(knownTimes);
    const unknownMedian = median(unknownTimes);
    const slack = Math.max(3, 0.5 * Math.min(knownMedian, unknownMedian));
    t.comment(
      `${route.url}: median latency known ${knownMedian.toFixed(3)} ms, unknown ${unknownMedian.toFixed(3)} ms ` +
        `(${SAMPLES} each, interleaved, over HTTP after ${WARM_UP} each of warm-up; allowed difference ${slack.toFixed(3)} ms)`,
    );
    t.ok(
      Math.abs(knownMedian - unknownMedian) < slack,
      `medians within ${slack.toFixed(2)} ms: known ${knownMedian.toFixed(2)}, unknown ${unknownMedian.toFixed(2)}`,
    );
    // Every known request mailed a link, no unknown one did: the deferred work did run, only after the answers.
    t.equal(await countFiles(outbox), mailsBefore + WARM_UP + SAMPLES, 'one mail per known request, none for unknown');
  });
}

t.test('POST /auth/email: a registered address is answered like a free one and sent nothing', async (t) => {
  const taken = await register(app);
  const caller = await login(app, await register(app));
  await app.accounts.settled();
  const takenMailsBefore = smtp.to(taken.email).length;
  const free = uniqueEmail('free');
  const callerMailsBefore = smtp.to(caller.account.email).length;

  const change = (newEmail: string) =>
    app.inject({
      method: 'POST',
      url: '/auth/email',
      headers: bearer(caller.accessToken),
      payload: { newEmail, currentPassword: STRONG_PASSWORD },
      remoteAddress: nextAddress(),
    });
  const toTaken = await change(taken.email);
  await app.accounts.settled();
  const toFree = await change(free);
  await app.accounts.settled();

  t.equal(toTaken.statusCode, 202, 'registered address: 202');
  t.equal(toFree.statusCode, 202, 'free address: 202');
  t.equal(toTaken.body, '{}', 'body {}');
  t.equal(toFree.body, toTaken.body, 'the same body');
  t.same(comparableHeaders(toFree), comparableHeaders(toTaken), 'the same headers');

  t.equal(smtp.to(taken.email).length, takenMailsBefore, 'the registered address received nothing');
  const [link] = await smtp.waitFor(free);
  t.match(link?.links, [/\/confirm-email\?token=/], 'the free address got its confirmation link');
  // The current address is told both times, without a link: it cannot tell the two apart either.
  const notices = smtp.to(caller.account.email).slice(callerMailsBefore);
  t.equal(notices.length, 2, 'a notice to the current address each time');
  for (const notice of notices) t.equal(notice.links.length, 0, 'the notice holds no link');
  t.equal(notices[0]?.subject, notices[1]?.subject, 'the same notice both times');
});

/** The app listening on a free loopback port (closed with the app); its base URL. */
async function listening(target: App): Promise<string> {
  if (!target.server.listening) await target.listen({ port: await freePort(), host: '127.0.0.1' });
  const address = target.server.address();
  if (!address || typeof address === 'string') throw new Error('not listening on a port');
  return `http://127.0.0.1:${address.port}`;
}

async function countFiles(dir: string): Promise<number> {
  const files = await readdir(dir).catch(() => [] as string[]);
  return files.filter((file) => file.endsWith('.eml')).length;
}
