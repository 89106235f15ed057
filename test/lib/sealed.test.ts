// sealed.ts: AES-256-GCM with the owner as associated data. A value opens only with its key and its owner; any
// change to the iv, ciphertext or tag, or any other key or owner, throws.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { open, seal } from '../../src/lib/sealed.js';

const key = randomBytes(32);
const owner = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const other = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c';
const secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

/** Flips one bit of the part `index` (1 iv, 2 ciphertext, 3 tag) of a sealed value. */
function flipBit(sealed: string, index: number, byte = 0, bit = 0): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[index] ?? '', 'base64url');
  bytes[byte] = (bytes[byte] ?? 0) ^ (1 << bit);
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

t.test('round trip', async (t) => {
  const sealed = seal(key, secret, owner);
  t.equal(open(key, sealed, owner), secret);
  t.equal(open(key, seal(key, '', owner), owner), '', 'the empty string too');
  const unicode = 'ключ 🔑 clé';
  t.equal(open(key, seal(key, unicode, owner), owner), unicode, 'and non-ASCII text');
});

t.test('the form: v1 and three base64url parts; a fresh iv every time; no plaintext inside', async (t) => {
  const sealed = seal(key, secret, owner);
  t.match(sealed, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  const [, iv, , tag] = sealed.split('.');
  t.equal(Buffer.from(iv ?? '', 'base64url').length, 12, '96-bit iv');
  t.equal(Buffer.from(tag ?? '', 'base64url').length, 16, '128-bit tag');
  t.notOk(sealed.includes(secret), 'the plaintext is not in the sealed value');
  t.notOk(sealed.includes(Buffer.from(secret).toString('base64url')), 'not even base64url-encoded');
  const again = seal(key, secret, owner);
  t.not(again, sealed, 'sealing twice gives different values');
  t.not(again.split('.')[1], iv, 'with different ivs');
});

t.test('tampering with the iv, the ciphertext or the tag throws', async (t) => {
  const sealed = seal(key, secret, owner);
  for (const [index, name] of [
    [1, 'iv'],
    [2, 'ciphertext'],
    [3, 'tag'],
  ] as const) {
    const length = Buffer.from(sealed.split('.')[index] ?? '', 'base64url').length;
    for (const byte of [0, length - 1]) {
      for (const bit of [0, 7]) {
        t.throws(() => open(key, flipBit(sealed, index, byte, bit), owner), `${name}: byte ${byte}, bit ${bit}`);
      }
    }
  }
  const [version, iv, ciphertext, tag] = sealed.split('.') as [string, string, string, string];
  t.throws(() => open(key, [version, iv, ciphertext, tag.slice(0, 8)].join('.'), owner), 'a truncated tag');
  t.throws(() => open(key, [version, iv, `${ciphertext}AA`, tag].join('.'), owner), 'a longer ciphertext');
  t.throws(() => open(key, [version, iv, ciphertext.slice(0, -2), tag].join('.'), owner), 'a shorter ciphertext');
  t.throws(() => open(key, [version, iv, '', tag].join('.'), owner), 'an emptied ciphertext');
  t.throws(() => open(key, ['v2', iv, ciphertext, tag].join('.'), owner), 'another version');
  t.throws(() => open(key, [version, iv, ciphertext].join('.'), owner), 'no tag');
  t.throws(() => open(key, secret, owner), 'not a sealed value at all');
  t.throws(() => open(key, '', owner), 'the empty string');
  t.equal(open(key, sealed, owner), secret, 'control: the untouched value still opens');
});

t.test('another key or another owner throws', async (t) => {
  const sealed = seal(key, secret, owner);
  t.throws(() => open(randomBytes(32), sealed, owner), 'another key');
  const nearKey = Buffer.from(key);
  nearKey[31] = (nearKey[31] ?? 0) ^ 1;
  t.throws(() => open(nearKey, sealed, owner), 'a key one bit off');
  t.throws(() => open(key, sealed, other), "another user's id");
  t.throws(() => open(key, sealed, ''), 'no associated data');
  t.throws(() => open(key, sealed, owner.toUpperCase()), 'the same id in upper case');
  // The ciphertext and tag of one owner's value under another owner's iv/ciphertext/tag: nothing transplants.
  const others = seal(key, secret, other);
  const [, iv, ciphertext, tag] = sealed.split('.') as [string, string, string, string];
  const [, , , otherTag] = others.split('.') as [string, string, string, string];
  t.throws(() => open(key, ['v1', iv, ciphertext, otherTag].join('.'), owner), "another value's tag");
  t.throws(() => open(key, sealed, other), 'copied onto another row');
  t.equal(open(key, ['v1', iv, ciphertext, tag].join('.'), owner), secret, 'control');
});
