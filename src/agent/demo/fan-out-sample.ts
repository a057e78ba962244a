import { readFileSync } from 'node:fs';
import { ErrorCodes, HandoffError, type PlanDraft } from '../../core/index.ts';

const script = (name: string) => readFileSync(new URL(`./scripts/${name}`, import.meta.url), 'utf8');

/** The bundled sample that fans out: "one sheet per region" of a sales CSV. */
export function wantsSheetPerRegion(request: string): boolean {
  return /\bsheets?\s+(per|for each|for every|by)\s+region\b/i.test(request);
}

type Call = { name: string; input: Record<string, unknown> };

/** A region as a workstream id: lower-case letters, digits and dashes. */
function regionId(region: string): string {
  return (
    region
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 32) || 'region'
  );
}

/** A region name safe inside single quotes on a command line. */
function safeRegion(region: string): string {
  return region.replace(/[^A-Za-z0-9 _.-]/g, '').slice(0, 60);
}

/** The distinct values of the CSV's region column, in order of first appearance. */
export function regionsOf(csvText: string): string[] {
  const lines = csvText.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').split(',').map((h) => h.trim().toLowerCase());
  const col = header.findIndex((h) => ['region', 'area', 'territory', 'zone', 'market'].includes(h));
  if (col < 0) return [];
  const seen = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const value = safeRegion((line.split(',')[col] ?? '').trim());
    if (value && !seen.has(regionId(value))) seen.set(regionId(value), value);
  }
  return [...seen.values()];
}

/** The plan: one workstream per region, then a merge into one workbook. */
export function sheetPerRegionPlan(input: string, csvText: string): PlanDraft {
  const regions = regionsOf(csvText);
  if (regions.length < 2 || regions.length > 8) {
    throw new HandoffError(
      ErrorCodes.demoUnsupported,
      `The demo model splits a sales CSV into 2–8 regions; ${input} has ${regions.length}. To hand off this request, set ANTHROPIC_API_KEY and restart Handoff.`,
    );
  }
  return {
    summary: `Build one workbook from ${input} with one sheet per region: each region's rows are prepared in parallel (one workstream per region, each in its own sandbox), then merged with a total per sheet and a summary chart.`,
    steps: [
      {
        title: 'Prepare each region',
        detail: `One workstream per region (${regions.join(', ')}) extracts that region's rows.`,
        actions: ['read_files', 'run_commands', 'create_files'],
      },
      {
        title: 'Merge into one workbook',
        detail: 'One sheet per region with a SUM total; a Summary sheet with each total and a bar chart.',
        actions: ['run_commands', 'create_files'],
      },
      { title: 'Deliver the workbook', detail: 'Post sales-by-region.xlsx in the thread.', actions: ['create_files'] },
    ],
    deliverables: [{ name: 'sales-by-region.xlsx', type: 'xlsx' }],
    workstreams: regions.map((r) => ({
      id: regionId(r),
      title: r,
      brief: `Extract the ${r} rows of ${input} (with the header) into ${regionId(r)}.csv and hand it back.`,
      inputs: [input],
    })),
    merge: 'Build sales-by-region.xlsx: one sheet per region with a total row, and a Summary sheet with a chart.',
    onChildFailure: 'retry',
  };
}

/** Which workstream a run is, from Handoff's note in its first message; undefined for the merge. */
function workstreamOf(firstMessage: string): { id: string; region: string } | undefined {
  const m = /You are workstream "([a-z0-9_-]+)" \(([^)\n]*)\)/.exec(firstMessage);
  return m ? { id: m[1]!, region: safeRegion(m[2]!) } : undefined;
}

/** The run's calls: a workstream extracts its region; the merge builds the workbook. */
export function sheetPerRegionCalls(input: string, firstMessage: string): Call[] {
  const child = workstreamOf(firstMessage);
  if (child) {
    return [
      { name: 'write_file', input: { path: '/tmp/region_sheet.py', content: script('region_sheet.py'), step: 1 } },
      {
        name: 'run_command',
        input: {
          command: `python3 /tmp/region_sheet.py '/workspace/in/${input}' '${child.region}' /workspace/out/${child.id}.csv`,
          step: 1,
        },
      },
      { name: 'deliver_artifact', input: { path: `/workspace/out/${child.id}.csv`, step: 1 } },
    ];
  }
  return [
    { name: 'write_file', input: { path: '/tmp/merge_regions.py', content: script('merge_regions.py'), step: 1 } },
    {
      name: 'run_command',
      input: {
        command: 'python3 /tmp/merge_regions.py /workspace/in/workstreams /workspace/out/sales-by-region.xlsx',
        step: 2,
      },
    },
    { name: 'deliver_artifact', input: { path: '/workspace/out/sales-by-region.xlsx', step: 3 } },
  ];
}

/** The closing words, from the scripts' JSON lines. */
export function sheetPerRegionClosing(firstMessage: string, facts: Array<Record<string, unknown> | undefined>): string {
  const child = workstreamOf(firstMessage);
  const f = facts.findLast((x) => typeof x?.total === 'number');
  const total = typeof f?.total === 'number' ? f.total.toLocaleString('en-US', { minimumFractionDigits: 2 }) : '';
  if (child)
    return `${child.region}: ${typeof f?.rows === 'number' ? `${f.rows} rows` : 'done'}${total ? `, ${total} in total` : ''}.`;
  const regions = typeof f?.regions === 'number' ? ` ${f.regions} regions,` : '';
  return `Here is sales-by-region.xlsx: one sheet per region with a total row, and a Summary sheet with each region's total and a bar chart (${regions.trim()}${typeof f?.rows === 'number' ? ` ${f.rows} rows` : ''}${total ? `, ${total} in total` : ''}). Each region was prepared in its own sandbox, in parallel.`;
}
