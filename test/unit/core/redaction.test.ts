import { describe, expect, it } from 'vitest';
import { redact } from '../../../src/core/index.ts';

describe('redact', () => {
  it('replaces e-mail addresses', () => {
    const r = redact('Send it to ana.lopez+q3@example.co.uk and cc bo@corp.example.com.', ['email']);
    expect(r.text).toBe('Send it to [redacted:email] and cc [redacted:email].');
    expect(r.counts).toEqual({ email: 2 });
  });

  it('replaces phone numbers in international and national formats', () => {
    const text = [
      'London +44 20 7946 0958',
      'SF +1 (415) 555-0132',
      'Berlin 0049 30 1234567',
      'NY 212-555-0147',
      'Chicago (312) 555-0199',
      'UK 020 7946 0958',
      'Paris +33 1 42 68 53 00',
      'Tokyo +81-3-1234-5678',
    ].join('; ');
    const r = redact(text, ['phone']);
    expect(r.counts.phone).toBe(8);
    expect(r.text).not.toMatch(/\d{3}/);
    expect(r.text).toContain('London [redacted:phone]; SF [redacted:phone]');
  });

  it('replaces Luhn-valid card numbers with spaces or dashes, not Luhn-invalid ones', () => {
    const r = redact(
      'Visa 4111 1111 1111 1111, MC 5500-0000-0000-0004, Amex 378282246310005, typo 4111 1111 1111 1112',
      ['card'],
    );
    expect(r.text).toBe('Visa [redacted:card], MC [redacted:card], Amex [redacted:card], typo 4111 1111 1111 1112');
    expect(r.counts).toEqual({ card: 3 });
  });

  it('replaces card numbers that are fields of a CSV row, but not the tail of a comma-grouped number', () => {
    const r = redact('name,card\nDana,4111 1111 1111 1111\nLee,5500000000000004,EUR\ntotal,1,4111111111111111', [
      'card',
    ]);
    expect(r.text).toBe('name,card\nDana,[redacted:card]\nLee,[redacted:card],EUR\ntotal,1,4111111111111111');
    expect(r.counts).toEqual({ card: 2 });
  });

  it('replaces checksum-valid IBANs, grouped or not, and keeps what follows', () => {
    const r = redact(
      'Pay DE89 3704 0044 0532 0130 00 EUR 1,200.00 or GB82WEST12345698765432. Not DE89 3704 0044 0532 0130 01.',
      ['iban'],
    );
    expect(r.text).toBe('Pay [redacted:iban] EUR 1,200.00 or [redacted:iban]. Not DE89 3704 0044 0532 0130 01.');
    expect(r.counts).toEqual({ iban: 2 });
  });

  it('replaces API keys, tokens and private keys', () => {
    const text = [
      'anthropic sk-ant-api03-Abc123def456Ghi789jkl012MNO345pqr',
      'slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
      'socket xapp-1-A0123456789-1234567890123-abcdef0123456789',
      'github ghp_16C7e42F292c6912E7710c838347Ae178B4a',
      'aws AKIAIOSFODNN7EXAMPLE',
      'curl -H "Authorization: Bearer 8f4Kq9ZxP2mN7vR1tY6wL3sD0gH5jB" https://api.example.com',
      'DB_PASSWORD=correct-horse-battery-staple',
      'opaque Zx9Qp2LmN8vR4tY7wK1sD6fG3hJ5aB0cE2xW9uI8oP7',
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----',
    ].join('\n');
    const r = redact(text, ['secret']);
    expect(r.counts).toEqual({ secret: 9 });
    expect(r.text).toBe(
      [
        'anthropic [redacted:secret]',
        'slack [redacted:secret]',
        'socket [redacted:secret]',
        'github [redacted:secret]',
        'aws [redacted:secret]',
        'curl -H "Authorization: Bearer [redacted:secret]" https://api.example.com',
        'DB_PASSWORD=[redacted:secret]',
        'opaque [redacted:secret]',
        '[redacted:secret]',
      ].join('\n'),
    );
  });

  it('redacts a private key block cut off before its END line', () => {
    const r = redact('here:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC');
    expect(r.text).toBe('here:\n[redacted:secret]');
  });

  it('counts every kind and only redacts the kinds asked for', () => {
    const text =
      'Ana (ana@example.com, +44 20 7946 0958) paid with 4111-1111-1111-1111 using key ghp_16C7e42F292c6912E7710c838347Ae178B4a';
    const all = redact(text);
    expect(all.counts).toEqual({ email: 1, phone: 1, card: 1, iban: 0, secret: 1 });
    expect(all.text).toBe(
      'Ana ([redacted:email], [redacted:phone]) paid with [redacted:card] using key [redacted:secret]',
    );
    const emailOnly = redact(text, ['email']);
    expect(emailOnly.counts).toEqual({ email: 1 });
    expect(emailOnly.text).toContain('+44 20 7946 0958');
    expect(redact(text, []).text).toBe(text);
  });

  it('leaves dates, prices, order numbers, UUIDs, hashes and versions alone', () => {
    const text = [
      'Q3 ran 2025-07-01 to 2025-09-30 (01/07/2025–30/09/2025, 01.07.2025, 2025-09-30T14:30:00.000Z)',
      'Revenue $1,234,567.89, costs 1 234 567,89 €, margin 12.5%, 14:30–15:45',
      'Order #1000234567891234 and 9780306406157 (ISBN), order 4000-1234-5678-9010, invoice INV-2025-000123',
      'Run 550e8400-e29b-41d4-a716-446655440000, sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      'Version 1.2.3, build 20250301, IP 192.168.1.10, Slack ts 1700000000.000100, <@U0123ABCD>',
      'ThisIsAVeryLongCamelCaseIdentifierName123WithMore src/storage/artifacts/local.ts',
      'maxTokens: 400000000, token_count=123456789, tokens: lots-and-lots',
    ].join('\n');
    const r = redact(text);
    expect(r.text).toBe(text);
    expect(r.counts).toEqual({ email: 0, phone: 0, card: 0, iban: 0, secret: 0 });
  });
});
