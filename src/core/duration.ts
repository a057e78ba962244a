import { z } from 'zod';

const durationPattern = /^(?:\d+(?:ms|s|m|h|d))+$/;
const durationUnitsMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `15m`, `24h`, `7d`, `1h30m` → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!durationPattern.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * durationUnitsMs[m[2]!]!;
  return ms;
}

/** A duration string; with `min`, at least `min.ms` long (else `min.reason`). */
export function durationSchema(min?: { ms: number; reason: string }) {
  return z
    .string({ error: 'must be a duration such as 90s, 15m, 24h or 7d' })
    .refine((s) => durationPattern.test(s), {
      error: (issue) =>
        `${JSON.stringify(issue.input)} is not a duration: use a number and a unit (ms, s, m, h, d), e.g. 24h`,
      abort: true,
    })
    .refine((s) => (parseDuration(s) ?? 0) >= (min?.ms ?? 1), { error: min?.reason ?? 'must be longer than zero' });
}

export const DurationSchema = durationSchema();
