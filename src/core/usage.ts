import { z } from 'zod';

export const UsageSchema = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  cacheReadTokens: z.number().int().nonnegative(),
  cacheWriteTokens: z.number().int().nonnegative(),
});
export type Usage = z.infer<typeof UsageSchema>;

export const zeroUsage: Usage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };

export function addUsage(a: Usage, b: Usage): Usage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
  };
}

export function totalTokens(u: Usage): number {
  return u.inputTokens + u.outputTokens + u.cacheReadTokens + u.cacheWriteTokens;
}

/**
 * Tokens as they count against a run's token budget: cache reads and writes weigh what
 * they cost relative to a plain input token (a cache read is about a tenth of one), so a
 * long run that rereads its cached transcript every turn does not hit the cap early.
 * With no input price to compare against, the API's usual ratios (0.1 and 1.25) apply.
 */
export function budgetTokens(u: Usage, p: Prices): number {
  const readWeight = p.inputPerMTok > 0 ? p.cacheReadPerMTok / p.inputPerMTok : 0.1;
  const writeWeight = p.inputPerMTok > 0 ? p.cacheWritePerMTok / p.inputPerMTok : 1.25;
  return Math.round(u.inputTokens + u.outputTokens + u.cacheReadTokens * readWeight + u.cacheWriteTokens * writeWeight);
}

/** Prices in US dollars per million tokens. */
export interface Prices {
  inputPerMTok: number;
  outputPerMTok: number;
  cacheReadPerMTok: number;
  cacheWritePerMTok: number;
}

export function costUsd(u: Usage, p: Prices): number {
  return (
    (u.inputTokens * p.inputPerMTok +
      u.outputTokens * p.outputPerMTok +
      u.cacheReadTokens * p.cacheReadPerMTok +
      u.cacheWriteTokens * p.cacheWritePerMTok) /
    1_000_000
  );
}
