import { describe, expect, it } from 'vitest';
import { OomTrailer } from '../../../src/runner/sandbox/oom-trailer.ts';

const nonce = '0123456789abcdef0123456789abcdef';
const other = 'fedcba9876543210fedcba9876543210';
const line = (n: string, before: string, after: string, rc = '0') => `\x1ehandoff-oom ${n} ${before} ${after} ${rc}\n`;

/** Feeds `text` in chunks of `size` bytes; returns what passed through and the reading. */
function feed(text: string, size: number) {
  const trailer = new OomTrailer(nonce);
  const bytes = Buffer.from(text);
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(trailer.push(bytes.subarray(i, i + size)));
  out.push(trailer.end());
  return { text: Buffer.concat(out).toString(), reading: trailer.reading };
}

describe('OomTrailer', () => {
  for (const size of [1, 3, 7, 1000]) {
    it(`strips this exec's reading and keeps all other output (chunks of ${size} bytes)`, () => {
      const got = feed(`warning: x\n${line(nonce, '2', '3')}`, size);
      expect(got.text).toBe('warning: x\n');
      expect(got.reading).toEqual({ before: 2, after: 3, exitCode: 0 });
    });

    it(`treats a look-alike with another nonce as plain output (chunks of ${size} bytes)`, () => {
      const fake = `${line(other, '0', '9')}\x1ehandoff-oom ${nonce.slice(0, 8)} 0 9 0\n`;
      const got = feed(`${fake}${line(nonce, '4', '4')}`, size);
      expect(got.text).toBe(fake);
      expect(got.reading).toEqual({ before: 4, after: 4, exitCode: 0 });
    });

    it(`gives no reading when the wrapper never reported (chunks of ${size} bytes)`, () => {
      const got = feed(`partial \x1ehandoff-oom ${nonce.slice(0, 5)}`, size);
      expect(got.text).toBe(`partial \x1ehandoff-oom ${nonce.slice(0, 5)}`);
      expect(got.reading).toBeUndefined();
    });
  }

  it('reads the fingerprint of /workspace/out the wrapper appends, and strips it', () => {
    const got = feed(`out\n\x1ehandoff-oom ${nonce}  3 137 4294967295 1234\n`, 5);
    expect(got.text).toBe('out\n');
    expect(got.reading).toEqual({ before: undefined, after: 3, exitCode: 137, outputs: '4294967295 1234' });
  });

  it('reports missing counters as undefined and passes later output through', () => {
    const got = feed(`${line(nonce, '', '')}late\n`, 4);
    expect(got.reading).toEqual({ before: undefined, after: undefined, exitCode: 0 });
    expect(got.text).toBe('late\n');
  });

  it('gives no reading for a line without the exit status', () => {
    const bad = `\x1ehandoff-oom ${nonce} 1 1\n`;
    const got = feed(bad, 3);
    expect(got.reading).toBeUndefined();
    expect(got.text).toBe(bad);
  });

  it('reads the counters and the status when the fingerprint could not be taken', () => {
    const got = feed(`\x1ehandoff-oom ${nonce} 1 1 2 \n`, 3);
    expect(got.reading).toEqual({ before: 1, after: 1, exitCode: 2 });
    expect(got.text).toBe('');
  });

  it('refuses a nonce that is not random hex', () => {
    expect(() => new OomTrailer('')).toThrow();
  });
});
