// rateLimitKey: the client address a per-IP budget counts by (contract: an IPv6 client counts by its /64 prefix).
import t from 'tap';
import { rateLimitKey } from '../../src/lib/client-address.js';

t.test('IPv4 counts as itself', async (t) => {
  t.equal(rateLimitKey('203.0.113.7'), '203.0.113.7');
  t.equal(rateLimitKey('127.0.0.1'), '127.0.0.1');
  t.not(rateLimitKey('203.0.113.7'), rateLimitKey('203.0.113.8'), 'neighbours have their own budgets');
});

t.test('IPv4-mapped IPv6 counts as its IPv4 address', async (t) => {
  t.equal(rateLimitKey('::ffff:203.0.113.7'), '203.0.113.7');
  t.equal(rateLimitKey('::FFFF:203.0.113.7'), '203.0.113.7', 'uppercase');
  t.equal(rateLimitKey('0:0:0:0:0:ffff:203.0.113.7'), '203.0.113.7', 'uncompressed');
  t.equal(rateLimitKey('::ffff:cb00:7107'), '203.0.113.7', 'hex form');
  t.not(rateLimitKey('::ffff:203.0.113.7'), rateLimitKey('::ffff:203.0.113.8'));
});

t.test('IPv6 counts by its /64 prefix', async (t) => {
  const key = rateLimitKey('2001:db8:1:2::1');
  t.equal(key, '2001:db8:1:2::/64');
  for (const address of [
    '2001:db8:1:2::2',
    '2001:db8:1:2:ffff:ffff:ffff:ffff',
    '2001:0db8:0001:0002:0000:0000:0000:0001',
    '2001:DB8:1:2:A:B:C:D',
    '2001:db8:1:2:0:0:0:0',
    '2001:db8:1:2::',
    '2001:db8:1:2::9%eth0',
    '2001:db8:1:2::1.2.3.4',
  ]) {
    t.equal(rateLimitKey(address), key, `${address}: the same /64`);
  }
  t.not(rateLimitKey('2001:db8:1:3::1'), key, 'the next /64 has its own budget');
  t.not(rateLimitKey('2001:db8:1::1'), key, 'a shorter prefix is another /64');
});

t.test('compressed forms anywhere in the address', async (t) => {
  t.equal(rateLimitKey('::1'), '0:0:0:0::/64');
  t.equal(rateLimitKey('::'), '0:0:0:0::/64');
  t.equal(rateLimitKey('2001:db8::'), '2001:db8:0:0::/64');
  t.equal(rateLimitKey('2001::1:2:3:4'), '2001:0:0:0::/64');
  t.equal(rateLimitKey('2001:db8:0:0:1::'), '2001:db8:0:0::/64');
});

t.test('zone ids are dropped', async (t) => {
  t.equal(rateLimitKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  t.equal(rateLimitKey('fe80::abcd%25'), 'fe80:0:0:0::/64');
  t.equal(rateLimitKey('FE80::1%EN0'), 'fe80:0:0:0::/64');
});

t.test('anything else is kept as given', async (t) => {
  t.equal(rateLimitKey('not an address'), 'not an address');
  t.equal(rateLimitKey(''), '');
});
