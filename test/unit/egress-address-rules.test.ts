import { describe, expect, it } from 'vitest';
import {
  checkDestination,
  forbiddenAddressReason,
  hostAllowed,
  parseAuthority,
} from '../../src/runner/egress/index.ts';

describe('forbiddenAddressReason', () => {
  it.each([
    ['169.254.169.254', /cloud metadata/],
    ['fd00:ec2::254', /cloud metadata/],
    ['127.0.0.1', /loopback/],
    ['127.255.0.9', /loopback/],
    ['::1', /loopback/],
    ['0.0.0.0', /unspecified/],
    ['0.1.2.3', /unspecified/],
    ['::', /unspecified/],
    ['169.254.10.1', /link-local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['10.0.0.5', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['fc00::1', /private/],
    ['fd12:3456::1', /private/],
    ['100.64.0.1', /carrier-grade/],
    ['100.127.255.254', /carrier-grade/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['ff02::1', /multicast/],
    ['240.0.0.1', /reserved/],
    ['255.255.255.255', /reserved/],
    ['198.18.0.1', /reserved/],
    ['::127.0.0.1', /reserved/],
    ['2001::1', /reserved/],
    // IPv4 addresses written inside IPv6 are judged as the IPv4 address they carry.
    ['::ffff:127.0.0.1', /loopback/],
    ['::ffff:7f00:1', /loopback/],
    ['::ffff:169.254.169.254', /cloud metadata/],
    ['::ffff:10.1.2.3', /private/],
    ['64:ff9b::a00:5', /private/],
    ['64:ff9b::127.0.0.1', /loopback/],
    ['2002:a9fe:a9fe::1', /cloud metadata/],
    ['2002:c0a8:0101::1', /private/],
    ['not-an-address', /not an IP address/],
  ])('%s is refused', (address, why) => {
    expect(forbiddenAddressReason(address)).toMatch(why);
  });

  it.each([
    '93.184.215.14',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '203.0.113.10',
    '2606:2800:21f:cb07:6820:80da:af6b:8b2c',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:0808:0808::1',
  ])('%s (public) is allowed', (address) => {
    expect(forbiddenAddressReason(address)).toBeUndefined();
  });
});

describe('hostAllowed', () => {
  const list = ['files.example.com', '*.cdn.example.com'];
  it.each([
    ['files.example.com', true],
    ['FILES.example.com.', true],
    ['x.files.example.com', false],
    ['cdn.example.com', false],
    ['a.cdn.example.com', true],
    ['a.b.cdn.example.com', true],
    ['evilcdn.example.com', false],
    ['cdn.example.com.evil.net', false],
  ])('%s → %s', (host, expected) => {
    expect(hostAllowed(host, list)).toBe(expected);
  });
});

describe('parseAuthority', () => {
  it.each([
    ['files.example.com:443', { host: 'files.example.com', port: 443 }],
    ['Files.Example.COM.:8443', { host: 'files.example.com', port: 8443 }],
    ['files.example.com:80', { host: 'files.example.com', port: 80 }],
    ['[::1]:443', { host: '::1', port: 443 }],
    ['2130706433:443', { host: '127.0.0.1', port: 443 }],
    ['0x7f.1:443', { host: '127.0.0.1', port: 443 }],
  ])('%s', (authority, expected) => {
    expect(parseAuthority(authority)).toEqual(expected);
  });

  it.each([
    'files.example.com',
    'files.example.com:',
    'user@files.example.com:443',
    'http://x.com:443',
    ':443',
    'a b:443',
  ])('%s is not an authority', (authority) => {
    expect(parseAuthority(authority)).toBeUndefined();
  });
});

describe('checkDestination', () => {
  const resolve = async (host: string) => (host === 'files.example.com' ? ['203.0.113.10'] : ['10.0.0.1']);
  const options = { allowed: ['files.example.com', 'intranet'], ports: [80, 443], resolve };

  it('allows an allowlisted name that resolves to public addresses only', async () => {
    expect(await checkDestination({ host: 'files.example.com', port: 443 }, options)).toEqual({
      ok: true,
      addresses: ['203.0.113.10'],
    });
  });

  it('holds a well-formed name that is not on the allowlist, without resolving it', async () => {
    let resolved = false;
    const verdict = await checkDestination(
      { host: 'other.example.org', port: 443 },
      {
        ...options,
        resolve: async () => {
          resolved = true;
          return [];
        },
      },
    );
    expect(verdict).toMatchObject({ ok: false, decision: 'held', status: 403 });
    expect(resolved).toBe(false);
  });

  it('refuses a name the policy could never approve instead of holding it', async () => {
    const verdict = await checkDestination({ host: 'intranet', port: 443 }, options);
    expect(verdict).toMatchObject({ ok: false, decision: 'refused' });
  });
});
