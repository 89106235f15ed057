// Where mail goes: an SMTP server through nodemailer, or (development, no SMTP_URL) .eml files in an outbox folder.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import nodemailer from 'nodemailer';

export type MailKind = 'verify_email' | 'password_reset' | 'email_change' | 'email_change_notice';

export interface OutgoingMail {
  kind: MailKind;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The one link the message carries, if any: logged by the outbox (development only), never by SMTP delivery. */
  link?: string;
}

export interface MailTransport {
  readonly kind: 'smtp' | 'outbox';
  /** One delivery attempt; rejects with nodemailer's error (its `code` and `responseCode` say whether to retry). */
  send(mail: OutgoingMail): Promise<void>;
  close(): void;
}

// Bounded, so a stalled server costs an attempt, not a stuck delivery.
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 };

export function smtpTransport(url: string, from: string): MailTransport {
  const transporter = nodemailer.createTransport({ url, ...SMTP_TIMEOUTS }, { from });
  return {
    kind: 'smtp',
    async send(mail) {
      await transporter.sendMail({ to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
    },
    close: () => transporter.close(),
  };
}

/** Writes each message, as the SMTP server would receive it, to `<dir>/<time>-<kind>-<random>.eml`. */
export function outboxTransport(dir: string, from: string, log: FastifyBaseLogger): MailTransport {
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' }, { from });
  return {
    kind: 'outbox',
    async send(mail) {
      const info = await composer.sendMail({ to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const file = path.join(dir, `${stamp}-${mail.kind}-${randomBytes(4).toString('hex')}.eml`);
      // The links in it are live credentials: readable by the owner only. Written aside and renamed into place, so
      // whoever watches the folder (a mail viewer, a test) never reads a message half written.
      const partial = `${file}.partial`;
      await writeFile(partial, info.message as Buffer, { mode: 0o600 });
      await rename(partial, file);
      log.warn({ mail: mail.kind, to: mail.to, link: mail.link, file }, 'no SMTP_URL: mail written to the outbox');
    },
    close: () => composer.close(),
  };
}
