import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { regionsOf, sheetPerRegionCalls, sheetPerRegionPlan } from '../../../src/agent/demo/fan-out-sample.ts';
import { matchSample } from '../../../src/agent/index.ts';
import { PlanDraftSchema } from '../../../src/core/index.ts';

const csv = readFileSync(new URL('../../../examples/sales.csv', import.meta.url), 'utf8');
const first = (request: string) =>
  `Request from Ana:\n<request>\n${request}\n</request>\n\nInput files:\n- /workspace/in/sales.csv (text/csv, 2000 bytes)`;

describe('the demo sample that fans out (one sheet per region)', () => {
  it('is what "one sheet per region" of a CSV asks for', () => {
    expect(matchSample(first('build a workbook from the attached sales CSV with one sheet per region')).input).toBe(
      'sales.csv',
    );
    const plain = matchSample(first('summarise the attached sales CSV into a spreadsheet with a totals sheet'));
    expect(plain.sample.plan('sales.csv').workstreams).toBeUndefined();
  });

  it('plans one valid workstream per region of the CSV, in order of appearance', () => {
    expect(regionsOf(csv)).toEqual(['South', 'East', 'North', 'West']);
    const plan = PlanDraftSchema.parse(sheetPerRegionPlan('sales.csv', csv));
    expect(plan.workstreams?.map((w) => w.id)).toEqual(['south', 'east', 'north', 'west']);
    expect(plan.workstreams?.every((w) => w.inputs?.[0] === 'sales.csv')).toBe(true);
    expect(plan.onChildFailure).toBe('retry');
  });

  it('refuses a CSV with fewer than 2 regions, and keeps region names off the command line', () => {
    expect(() => sheetPerRegionPlan('one.csv', 'date,region,revenue\n2026-01-01,North,1\n')).toThrow(/2–8 regions/);
    const calls = sheetPerRegionCalls(
      'sales.csv',
      `${first('x')}\nNote from Handoff: You are workstream "n" (No'rth; rm -rf /), one of`,
    );
    expect(calls[1]?.input.command).toBe(
      "python3 /tmp/region_sheet.py '/workspace/in/sales.csv' 'North rm -rf ' /workspace/out/n.csv",
    );
  });
});
