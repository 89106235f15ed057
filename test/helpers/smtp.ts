// A real SMTP server in the test process (smtp-server), whose received messages are parsed with mailparser.
// Tests point SMTP_URL at it and read what a user's mailbox would hold.
import { type AddressObject, type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { Teardown } from './app.js';
import { freePort } from './server-process.js';

export interface ReceivedMail {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The URLs in the plain-text part. */
  links: string[];
  /** The `token` query parameter of the one link, if any. */
  token: string | undefined;
  parsed: ParsedMail;
}

export interface SmtpSink {
  url: string;
  port: number;
  received: ReceivedMail[];
  /** Messages to `to` (lower-case), oldest first. */
  to(address: string): ReceivedMail[];
  /** Waits (bounded) until `count` messages reached `to`; returns them. */
  waitFor(address: string, count?: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** Refuses the next `count` messages with an SMTP reply (451: transient, 550: permanent). */
  refuseNext(count: number, responseCode: number): void;
  /** Attempts made, delivered or refused. */
  attempts: number;
  close(): Promise<void>;
}

const URL_PATTERN = /https?:\/\/[^\s<>"]+/g;

export async function startSmtpSink(t: Teardown): Promise<SmtpSink> {
  const received: ReceivedMail[] = [];
  let refusals = { count: 0, responseCode: 451 };
  let attempts = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      attempts++;
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (refusals.count > 0) {
          refusals = { ...refusals, count: refusals.count - 1 };
          const error = Object.assign(new Error('Try again later'), { responseCode: refusals.responseCode });
          callback(error);
          return;
        }
        simpleParser(Buffer.concat(chunks)).then(
          (parsed) => {
            const text = parsed.text ?? '';
            const links = text.match(URL_PATTERN) ?? [];
            const token = links[0] ? (new URL(links[0]).searchParams.get('token') ?? undefined) : undefined;
            received.push({
              to: addresses(parsed.to).join(','),
              subject: parsed.subject ?? '',
              text,
              html: typeof parsed.html === 'string' ? parsed.html : '',
              links,
              token,
              parsed,
            });
            callback();
          },
          (error: Error) => callback(error),
        );
      });
    },
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(close);
  const to = (address: string) => received.filter((mail) => mail.to === address.toLowerCase());
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    received,
    to,
    async waitFor(address, count = 1, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (to(address).length < count) {
        if (Date.now() > deadline) {
          throw new Error(`waited ${timeoutMs} ms for ${count} mail(s) to ${address}; got ${to(address).length}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return to(address);
    },
    refuseNext(count, responseCode) {
      refusals = { count, responseCode };
    },
    get attempts() {
      return attempts;
    },
    close,
  };
}

function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  const list = Array.isArray(field) ? field : field ? [field] : [];
  return list.flatMap((object) => object.value.map((entry) => (entry.address ?? '').toLowerCase()));
}
