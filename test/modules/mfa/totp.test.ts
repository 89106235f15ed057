// totp.ts against RFC 6238 Appendix B (SHA-1) and its acceptance window: one step of drift either way, never two;
// anything but six ASCII digits is no code.
import t from 'tap';
import {
  generateTotpSecret,
  matchTotpStep,
  otpauthUrl,
  TOTP_PERIOD_SECONDS,
  totpCode,
  totpStep,
} from '../../../src/modules/mfa/totp.js';

// RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
// Time (s) -> the 8-digit value of Appendix B; a 6-digit code is its last six digits (RFC 4226 §5.3 truncation).
const VECTORS: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

/** RFC 4648 base32, written out here so the test does not lean on the library under test. */
function base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of bytes) bits += byte.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[Number.parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)];
  return out;
}

t.test('the RFC seed in base32', async (t) => {
  t.equal(base32(Buffer.from('12345678901234567890', 'ascii')), RFC_SECRET);
});

t.test('RFC 6238 Appendix B, SHA-1: totpCode and matchTotpStep', async (t) => {
  for (const [seconds, eight] of VECTORS) {
    const code = eight.slice(-6);
    const step = Math.floor(seconds / TOTP_PERIOD_SECONDS);
    t.equal(totpStep(seconds * 1000), step, `T=${seconds}: step ${step}`);
    t.equal(totpCode(RFC_SECRET, step), code, `T=${seconds}: code ${code}`);
    t.equal(matchTotpStep(RFC_SECRET, code, seconds * 1000), step, `T=${seconds}: the code matches its own step`);
  }
  t.equal(TOTP_PERIOD_SECONDS, 30, '30-second steps');
});

t.test('one step of drift either way is accepted, two are not', async (t) => {
  const [seconds, eight] = VECTORS[3] as [number, string];
  const code = eight.slice(-6);
  const step = Math.floor(seconds / 30);
  const at = (offsetSteps: number) => (seconds + offsetSteps * 30) * 1000;
  t.equal(matchTotpStep(RFC_SECRET, code, at(-1)), step, 'a code of the next step (clock behind)');
  t.equal(matchTotpStep(RFC_SECRET, code, at(1)), step, 'a code of the previous step (clock ahead)');
  t.equal(matchTotpStep(RFC_SECRET, code, at(-2)), null, 'two steps ahead: rejected');
  t.equal(matchTotpStep(RFC_SECRET, code, at(2)), null, 'two steps behind: rejected');
  t.equal(matchTotpStep(RFC_SECRET, code, at(100)), null, 'long ago: rejected');

  // At any instant, exactly the codes of steps s-1, s, s+1 match, each reporting its own step.
  const now = at(0) + 17_000;
  const s = totpStep(now);
  for (const offset of [-1, 0, 1]) {
    t.equal(matchTotpStep(RFC_SECRET, totpCode(RFC_SECRET, s + offset), now), s + offset, `offset ${offset}: matches`);
  }
  for (const offset of [-3, -2, 2, 3]) {
    t.equal(matchTotpStep(RFC_SECRET, totpCode(RFC_SECRET, s + offset), now), null, `offset ${offset}: rejected`);
  }
});

t.test('anything but exactly six ASCII digits is rejected', async (t) => {
  const [seconds, eight] = VECTORS[0] as [number, string];
  const code = eight.slice(-6);
  const now = seconds * 1000;
  t.equal(matchTotpStep(RFC_SECRET, code, now), 1, 'control: the code itself matches');
  for (const bad of [
    '',
    eight, // the 8-digit value
    `${code}0`,
    code.slice(1),
    ` ${code}`,
    `${code} `,
    `${code}\n`,
    '287 082',
    '287-082',
    '28708a',
    'abcdef',
    '+87082',
    '-87082',
    '2870.2',
    '２８７０８２', // full-width digits
    '٢٨٧٠٨٢', // Arabic-Indic digits
    '0x4a1b',
  ]) {
    t.equal(matchTotpStep(RFC_SECRET, bad, now), null, `${JSON.stringify(bad)} rejected`);
  }
});

t.test('new secrets: 160 bits of base32, never the same twice', async (t) => {
  const secrets = Array.from({ length: 50 }, () => generateTotpSecret());
  for (const secret of secrets) t.match(secret, /^[A-Z2-7]{32}$/, 'base32, 32 characters (20 bytes)');
  t.equal(new Set(secrets).size, secrets.length, 'all distinct');
});

t.test('otpauthUrl names the issuer, the account and the parameters', async (t) => {
  const url = new URL(otpauthUrl(RFC_SECRET, 'ann@example.com', 'auth.test'));
  t.equal(url.protocol, 'otpauth:');
  t.equal(url.host, 'totp');
  t.match(decodeURIComponent(url.pathname), /^\/auth\.test:ann@example\.com$/, 'label issuer:account');
  t.equal(url.searchParams.get('secret'), RFC_SECRET);
  t.equal(url.searchParams.get('issuer'), 'auth.test');
  t.equal(url.searchParams.get('algorithm'), 'SHA1');
  t.equal(url.searchParams.get('digits'), '6');
  t.equal(url.searchParams.get('period'), '30');
});
