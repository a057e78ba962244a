import { z } from 'zod';

/** What `redact` can find. `secret` covers API keys, tokens and private key blocks. */
export const RedactionKindSchema = z.enum(['email', 'phone', 'card', 'iban', 'secret']);
export type RedactionKind = z.infer<typeof RedactionKindSchema>;

export const redactionKinds: readonly RedactionKind[] = RedactionKindSchema.options;

export interface RedactionResult {
  text: string;
  /** How many of each requested kind were replaced (0 when none). Only counts: the values are gone. */
  counts: Record<RedactionKind, number>;
}

const placeholder = (kind: RedactionKind) => `[redacted:${kind}]`;

/**
 * Replaces personal data and secrets in `text` with `[redacted:<kind>]`.
 * Pure and synchronous. Detectors are tuned to leave dates, prices, order numbers,
 * UUIDs and hashes alone: card numbers must pass Luhn, IBANs their mod-97 check,
 * phone numbers need a `+`/`00` prefix or a recognisable national layout.
 */
export function redact(text: string, kinds: readonly RedactionKind[] = redactionKinds): RedactionResult {
  const counts = { email: 0, phone: 0, card: 0, iban: 0, secret: 0 } satisfies Record<RedactionKind, number>;
  const wanted = new Set(kinds);
  let out = text;
  // Secrets first: tokens may contain digit runs or @ that other detectors would misread.
  for (const kind of ['secret', 'email', 'iban', 'card', 'phone'] as const) {
    if (!wanted.has(kind)) continue;
    for (const detector of detectors[kind]) {
      out = out.replace(detector.pattern, (...args: unknown[]) => {
        const match = args[0] as string;
        const groups = args.slice(1, -2) as (string | undefined)[];
        const replaced = detector.replace(match, groups);
        if (replaced === undefined) return match;
        counts[kind] += replaced.count;
        return replaced.text;
      });
    }
  }
  const result = {} as Record<RedactionKind, number>;
  for (const kind of redactionKinds) if (wanted.has(kind)) result[kind] = counts[kind];
  return { text: out, counts: result };
}

interface Detector {
  pattern: RegExp;
  /** The replacement for one match, or undefined to keep the match as it is. */
  replace(match: string, groups: (string | undefined)[]): { text: string; count: number } | undefined;
}

const whole =
  (kind: RedactionKind, valid: (match: string) => boolean = () => true): Detector['replace'] =>
  (match) =>
    valid(match) ? { text: placeholder(kind), count: 1 } : undefined;

const secretDetectors: Detector[] = [
  // PEM / PGP private keys, including a block cut off before its END line.
  {
    pattern:
      /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)/g,
    replace: whole('secret'),
  },
  // Provider-specific key formats.
  {
    pattern: new RegExp(
      [
        String.raw`\bsk-ant-[A-Za-z0-9_-]{16,}`,
        String.raw`\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}`,
        String.raw`\bxox[abposr]-[A-Za-z0-9-]{10,}`,
        String.raw`\bxapp-\d-[A-Za-z0-9-]{10,}`,
        String.raw`\bgh[pousr]_[A-Za-z0-9]{30,}`,
        String.raw`\bgithub_pat_[A-Za-z0-9_]{22,}`,
        String.raw`\b(?:AKIA|ASIA)[A-Z0-9]{16}\b`,
        String.raw`\bAIza[0-9A-Za-z_-]{35}\b`,
        String.raw`\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}`,
        String.raw`\bglpat-[A-Za-z0-9_-]{20,}`,
        String.raw`\bnpm_[A-Za-z0-9]{36}\b`,
        String.raw`https://hooks\.slack\.com/services/[A-Za-z0-9/]+`,
        // JSON Web Tokens: three base64url parts, the first two JSON objects.
        String.raw`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`,
      ].join('|'),
      'g',
    ),
    replace: whole('secret'),
  },
  // `Authorization: Bearer <token>` and `Bearer <token>`: keep the scheme, drop the token.
  {
    pattern: /\b(Bearer|Basic|Token)(\s+)([A-Za-z0-9._~+/=-]{16,})/gi,
    replace: (_match, [scheme, space]) => ({ text: `${scheme}${space}${placeholder('secret')}`, count: 1 }),
  },
  // `password = hunter2hunter2`, `"api_key": "…"`, `AWS_SECRET_ACCESS_KEY=…`: keep the name, drop the value.
  {
    pattern:
      /\b([A-Za-z0-9_]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?secret))(["']?\s*[:=]\s*["']?)([^\s"',;]{8,})/gi,
    // The name must end in the keyword (`GITHUB_TOKEN`, not `maxTokens`), and a plain number is not a secret.
    replace: (_match, [name, sep, value]) =>
      value && !value.startsWith('[redacted:') && !/^[\d.,_-]+$/.test(value)
        ? { text: `${name}${sep}${placeholder('secret')}`, count: 1 }
        : undefined,
  },
  // Long high-entropy strings standing alone (tokens without a known prefix). Hex digests and
  // UUIDs never qualify: they lack upper case letters or carry too little entropy per character.
  {
    pattern: /(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/=-]{40,}(?![A-Za-z0-9_+/=-])/g,
    replace: whole('secret', looksLikeToken),
  },
];

function looksLikeToken(s: string): boolean {
  if (!/[A-Z]/.test(s) || !/[a-z]/.test(s) || !/[0-9]/.test(s)) return false;
  if (s.includes('/') && /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_.-]+)+$/.test(s) && s.split('/').every((p) => p.length < 30))
    return false; // a path, not a token
  return shannonEntropy(s) >= 4.5;
}

/** Bits per character of a string's own character distribution. */
export function shannonEntropy(s: string): number {
  const freq = new Map<string, number>();
  for (const ch of s) freq.set(ch, (freq.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const n of freq.values()) {
    const p = n / s.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

const emailDetectors: Detector[] = [
  {
    pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b/g,
    replace: whole('email'),
  },
];

// IBAN: country, check digits, then 11–30 letters/digits, possibly in groups of four.
// The greedy match may swallow a following word ("… 00 EUR"), so trailing groups are
// dropped one by one until the checksum holds.
const ibanDetectors: Detector[] = [
  {
    pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}\b/g,
    replace: (match) => {
      const parts = match.split(' ');
      for (let n = parts.length; n >= 1; n--) {
        const candidate = parts.slice(0, n).join(' ');
        const compact = candidate.replace(/ /g, '');
        if (compact.length >= 15 && compact.length <= 34 && ibanValid(compact)) {
          const rest = match.slice(candidate.length);
          return { text: placeholder('iban') + rest, count: 1 };
        }
        if (compact.length < 15) break;
      }
      return undefined;
    },
  },
];

/** ISO 13616 mod-97 check. */
export function ibanValid(iban: string): boolean {
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(iban)) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const value = /[A-Z]/.test(ch) ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of value) remainder = (remainder * 10 + Number(digit)) % 97;
  }
  return remainder === 1;
}

const cardDetectors: Detector[] = [
  {
    // 13–19 digits, optionally grouped with single spaces or dashes; not part of a longer number
    // ("1,4111…" or "3.4111…"), but a CSV field after a comma is a field of its own.
    pattern: /(?<![\d./-])(?<!\d,)\d(?:[ -]?\d){12,18}(?![\d/]|[.,-]\d)/g,
    replace: whole('card', cardValid),
  },
];

function cardValid(match: string): boolean {
  const separators = new Set(match.replace(/\d/g, ''));
  if (separators.size > 1) return false; // "1234-5678 9012…" is not how cards are written
  const digits = match.replace(/\D/g, '');
  // Card networks issue numbers starting 2–6 (Mastercard 2-series, Amex, Visa, Mastercard, Discover/UnionPay);
  // this keeps long order and account numbers starting 0, 1, 7, 8 or 9 out.
  if (!/^[2-6]/.test(digits)) return false;
  return luhnValid(digits);
}

export function luhnValid(digits: string): boolean {
  if (!/^\d{13,19}$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

const phoneDetectors: Detector[] = [
  // International: +44 20 7946 0958, +1 (415) 555-0132, 0049 30 1234567.
  {
    pattern: /(?<![\w+])(?:\+|00)\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{1,5}){1,5}(?![\w]|[.,]\d)/g,
    replace: whole('phone', (m) => {
      const digits = m.replace(/\D/g, '').replace(/^00/, '');
      return digits.length >= 8 && digits.length <= 15;
    }),
  },
  // North American: (415) 555-0132, 415-555-0132, 415.555.0132.
  {
    pattern: /(?<![\w.,/-])(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4}(?![\w]|[.,/-]\d)/g,
    replace: whole('phone'),
  },
  // National with a trunk 0: 020 7946 0958, 030 1234 5678, 06-12345678.
  {
    pattern: /(?<![\w.,/-])0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}(?![\w]|[.,/-]\d)/g,
    replace: whole('phone', (m) => {
      const digits = m.replace(/\D/g, '');
      return digits.length >= 9 && digits.length <= 12;
    }),
  },
];

const detectors: Record<RedactionKind, Detector[]> = {
  secret: secretDetectors,
  email: emailDetectors,
  iban: ibanDetectors,
  card: cardDetectors,
  phone: phoneDetectors,
};
