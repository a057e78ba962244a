/** Median and 95th percentile of a sample, in the sample's unit. */
export function summary(values: number[]): { n: number; median: number; p95: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return {
    n: sorted.length,
    median: at(0.5),
    p95: at(0.95),
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

export function print(name: string, unit: string, values: number[]): void {
  const s = summary(values);
  const f = (v: number) => v.toFixed(1);
  console.log(
    `${name}: n=${s.n} median=${f(s.median)} ${unit} p95=${f(s.p95)} ${unit} min=${f(s.min)} max=${f(s.max)}`,
  );
}
