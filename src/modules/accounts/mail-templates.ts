// The messages: a plain-text part holding exactly one link (the contract's), and the same words in HTML. The
// notice to an old address holds no link at all, so a mail that lands elsewhere gives nobody a way in.
import type { MailKind, OutgoingMail } from '../../mail/transport.js';

export type LinkPage = 'verify-email' | 'reset-password' | 'confirm-email';

export function linkTo(appUrl: string, page: LinkPage, token: string): string {
  return `${appUrl}/${page}?token=${token}`;
}

export function verificationMail(to: string, link: string, ttlSeconds: number): OutgoingMail {
  return linkMail('verify_email', to, link, {
    subject: 'Verify your email address',
    lead: 'Open this link to confirm that this address is yours:',
    after: `The link works once and expires in ${duration(ttlSeconds)}. If you did not create an account, ignore this message.`,
  });
}

export function passwordResetMail(to: string, link: string, ttlSeconds: number): OutgoingMail {
  return linkMail('password_reset', to, link, {
    subject: 'Reset your password',
    lead: 'Open this link to choose a new password:',
    after:
      `The link works once and expires in ${duration(ttlSeconds)}. Resetting signs you out everywhere. ` +
      'If you did not ask for this, ignore this message: your password stays as it is.',
  });
}

export function emailChangeMail(to: string, link: string, ttlSeconds: number): OutgoingMail {
  return linkMail('email_change', to, link, {
    subject: 'Confirm your new email address',
    lead: 'Open this link to make this the email address of your account:',
    after: `The link works once and expires in ${duration(ttlSeconds)}. If you did not ask for this, ignore this message.`,
  });
}

/** To the current address: a change was asked for. No link, and the new address only masked. */
export function emailChangeNotice(to: string, newEmail: string): OutgoingMail {
  const words = [
    `Someone signed in to your account asked to change its email address to ${maskEmail(newEmail)}.`,
    'Nothing changes until the new address confirms it.',
    'If this was not you, change your password now.',
  ];
  return {
    kind: 'email_change_notice',
    to,
    subject: 'A change of your email address was requested',
    text: `${words.join('\n\n')}\n`,
    html: page(words.map((line) => `<p>${escapeHtml(line)}</p>`).join('')),
  };
}

/** `a***@example.com`: enough for the owner to recognise, not a full address for whoever reads the old mailbox. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  return `${local.slice(0, 1)}***${email.slice(at)}`;
}

function linkMail(
  kind: MailKind,
  to: string,
  link: string,
  words: { subject: string; lead: string; after: string },
): OutgoingMail {
  const href = escapeHtml(link);
  return {
    kind,
    to,
    subject: words.subject,
    text: `${words.lead}\n\n${link}\n\n${words.after}\n`,
    html: page(
      `<p>${escapeHtml(words.lead)}</p><p><a href="${href}">${escapeHtml(words.subject)}</a></p>` +
        `<p>${escapeHtml(words.after)}</p>`,
    ),
    link,
  };
}

function page(body: string): string {
  return `<!doctype html><html><body style="font-family: sans-serif">${body}</body></html>`;
}

function duration(seconds: number): string {
  if (seconds % 86_400 === 0) return plural(seconds / 86_400, 'day');
  if (seconds % 3600 === 0) return plural(seconds / 3600, 'hour');
  if (seconds % 60 === 0) return plural(seconds / 60, 'minute');
  return plural(seconds, 'second');
}

const plural = (count: number, unit: string) => `${count} ${unit}${count === 1 ? '' : 's'}`;

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
