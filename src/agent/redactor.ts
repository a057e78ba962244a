/** Removes sensitive text and counts what it removed, by kind. */
export type Redactor = (text: string) => { text: string; counts: Record<string, number> };

/**
 * Runs `redact` (when there is one) over text bound for the model and adds what it
 * removed to `counts`, which is audited; the removed text itself is kept nowhere.
 */
export function applyRedactor(redact: Redactor | undefined, counts: Record<string, number>, text: string): string {
  if (!redact) return text;
  const r = redact(text);
  for (const [kind, n] of Object.entries(r.counts)) if (n > 0) counts[kind] = (counts[kind] ?? 0) + n;
  return r.text;
}
