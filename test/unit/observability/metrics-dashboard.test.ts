import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/observability/index.ts';
import { metricQueueNames } from '../../../src/queue/index.ts';

const dashboard = JSON.parse(
  readFileSync(new URL('../../../charts/handoff/dashboards/handoff.json', import.meta.url), 'utf8'),
) as { panels: Panel[] };
const operations = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');

interface Panel {
  type: string;
  title: string;
  panels?: Panel[];
  targets?: Array<{ expr?: string }>;
}

const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
const exprs = allPanels(dashboard.panels).flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })),
);

/** Every metric Handoff defines, with the series names Prometheus stores for it. */
async function defined(): Promise<Map<string, string>> {
  const series = new Map<string, string>();
  for (const m of new Metrics().registry.getMetricsAsArray()) {
    series.set(m.name, m.name);
    // The array holds the metric objects themselves; their type says which series Prometheus stores.
    if (String((await (m as unknown as { get(): Promise<{ type: string }> }).get()).type) === 'histogram')
      for (const s of ['_bucket', '_count', '_sum']) series.set(m.name + s, m.name);
  }
  return series;
}

describe('the Grafana dashboard shipped with the chart', () => {
  it('has panels with queries', () => {
    expect(exprs.length).toBeGreaterThan(20);
    for (const { panel, expr } of exprs) expect(expr, panel).not.toBe('');
  });

  it('refers only to metrics the registry defines', async () => {
    const series = await defined();
    for (const { panel, expr } of exprs) {
      const names = expr.match(/\bhandoff_[a-z0-9_]+/g) ?? [];
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(series.has(name), `${panel} uses ${name}, which no registry defines`).toBe(true);
    }
  });

  it('has a panel for every metric Handoff defines', async () => {
    const used = new Set<string>();
    const series = await defined();
    for (const { expr } of exprs) for (const n of expr.match(/\bhandoff_[a-z0-9_]+/g) ?? []) used.add(series.get(n)!);
    const handoffMetrics = new Set([...series.values()].filter((n) => n.startsWith('handoff_')));
    expect([...handoffMetrics].filter((n) => !used.has(n))).toEqual([]);
  });
});

describe('docs/operations.md', () => {
  it('lists every metric Handoff defines, with its labels', () => {
    const names = new Metrics().registry.getMetricsAsArray();
    expect(names.length).toBeGreaterThan(15);
    for (const m of names) {
      if (!m.name.startsWith('handoff_')) continue;
      const line = operations.split('\n').find((l) => l.includes(`\`${m.name}\``));
      expect(line, `${m.name} is not in docs/operations.md`).toBeDefined();
      const labels = (m as unknown as { labelNames: string[] }).labelNames;
      for (const label of labels) expect(line, `${m.name}: label ${label}`).toContain(`\`${label}\``);
    }
  });
});

describe('the alerts docs/operations.md suggests', () => {
  const section = operations.slice(operations.indexOf('### Alerts to set'));
  const rows = section
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| alert') && !l.startsWith('| ---'))
    .slice(0, 50);
  const expressions = rows.flatMap((row) => [...row.split(' | ')[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));

  it('name only metrics the registry defines', async () => {
    expect(rows.length).toBeGreaterThan(5);
    const series = await defined();
    for (const expr of expressions) {
      for (const name of expr.match(/\bhandoff_[a-z0-9_]+/g) ?? [])
        expect(series.has(name), `${expr} uses ${name}, which no registry defines`).toBe(true);
    }
  });

  it('select queues by names the queue metrics carry', () => {
    const queues = Object.keys(metricQueueNames);
    let checked = 0;
    for (const expr of expressions) {
      for (const m of expr.matchAll(/queue(=~?)"([^"]+)"/g)) {
        // Markdown escapes the regex's | inside a table cell.
        const pattern = new RegExp(`^(?:${m[2]!.replace(/\\\|/g, '|')})$`);
        const matched = queues.filter((q) => pattern.test(q));
        expect(matched.length, `${expr}: queue${m[1]}"${m[2]}" matches no queue`).toBeGreaterThan(0);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(3);
  });
});
