/**
 * The demo model's document scripts, run with the host's Debian python3 (the same
 * packages as the sandbox image) and checked by opening what they produce.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  docxText,
  officeToolsAvailable,
  parseCsv,
  pdfInfo,
  readXlsx,
  recalculatedSheetCsv,
} from '../helpers/office.ts';

const PYTHON = '/usr/bin/python3';
const root = fileURLToPath(new URL('../../', import.meta.url));
const scripts = join(root, 'src/agent/demo/scripts');
const examples = join(root, 'examples');
const requireAll = process.env.HANDOFF_REQUIRE_DOCKER === '1';

function pythonReady(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import openpyxl, docx, reportlab'], { encoding: 'utf8' });
  return r.status === 0;
}

const havePython = pythonReady();
const haveOffice = officeToolsAvailable();
if (!havePython && !requireAll) {
  process.stderr.write(
    `\n[demo-scripts] SKIPPED: ${PYTHON} lacks openpyxl / python-docx / reportlab. ` +
      'Install python3-openpyxl python3-docx python3-reportlab (Debian) to run these tests.\n\n',
  );
}
if (havePython && !haveOffice && !requireAll) {
  process.stderr.write(
    '\n[demo-scripts] SKIPPED checks that open the documents: LibreOffice (soffice) or poppler-utils is missing.\n\n',
  );
}
const runAll = havePython || requireAll;
const runOffice = (havePython && haveOffice) || requireAll;

const work = mkdtempSync(join(tmpdir(), 'handoff-demo-scripts-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function runScript(name: string, args: string[]) {
  const r = spawnSync(PYTHON, [join(scripts, name), ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function jsonLine(stdout: string): Record<string, unknown> {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

const cents = (x: number) => Math.round(x * 100);
const colLetter = (index: number) => String.fromCharCode(65 + index);
const flat = (s: string) => s.replace(/\s+/g, ' ');

/** Sums of the value and unit columns per region, straight from the CSV. */
function expectedTotals(csvPath: string, region: string, value: string, units?: string) {
  const [header, ...rows] = parseCsv(readFileSync(csvPath, 'utf8')).filter((r) => r.some((c) => c !== ''));
  const ri = header!.indexOf(region);
  const vi = header!.indexOf(value);
  const ui = units ? header!.indexOf(units) : -1;
  const num = (s: string) => Number(s.replace(/[$,\s]/g, ''));
  const totals = new Map<string, { value: number; units: number }>();
  for (const row of rows) {
    const t = totals.get(row[ri]!) ?? { value: 0, units: 0 };
    t.value += num(row[vi]!);
    t.units += ui >= 0 ? num(row[ui]!) : 1;
    totals.set(row[ri]!, t);
  }
  return { header: header!, rows: rows.length, totals, ri, vi, ui };
}

interface SalesCase {
  name: string;
  csv: string;
  region: string;
  value: string;
  units: string;
}

async function checkWorkbook(c: SalesCase) {
  const out = join(work, `${c.name}.xlsx`);
  const res = runScript('sales_to_xlsx.py', [c.csv, out]);
  expect(res.code, res.stderr).toBe(0);
  const exp = expectedTotals(c.csv, c.region, c.value, c.units);
  const summary = jsonLine(res.stdout);
  expect(summary.regions).toBe(exp.totals.size);
  expect(summary.rows).toBe(exp.rows);
  expect(cents(summary.total as number)).toBe(cents([...exp.totals.values()].reduce((a, t) => a + t.value, 0)));

  const book = await readXlsx(readFileSync(out));
  expect(book.sheets).toEqual(['Data', 'Totals']);

  // Totals: real SUMIF formulas over the actual region / value / units columns, and SUM totals.
  const R = colLetter(exp.ri);
  const V = colLetter(exp.vi);
  const U = colLetter(exp.ui);
  const f = book.formulas.Totals!;
  const n = exp.totals.size;
  for (let row = 2; row <= n + 1; row++) {
    expect(f[`C${row}`]).toBe(`SUMIF(Data!$${R}:$${R},A${row},Data!$${V}:$${V})`);
    expect(f[`B${row}`]).toBe(`SUMIF(Data!$${R}:$${R},A${row},Data!$${U}:$${U})`);
  }
  expect(f[`B${n + 2}`]).toBe(`SUM(B2:B${n + 1})`);
  expect(f[`C${n + 2}`]).toBe(`SUM(C2:C${n + 1})`);
  expect(Object.keys(book.formulas.Data!)).toHaveLength(0);

  // Exactly one native bar chart, on the Totals sheet, fed from the Totals sheet.
  expect(book.charts).toHaveLength(1);
  const chart = book.charts[0]!;
  expect(chart.type).toBe('barChart');
  expect(chart.sheet).toBe('Totals');
  expect(chart.title).toBeTruthy();
  expect(chart.seriesRefs.length).toBeGreaterThanOrEqual(2);
  for (const ref of chart.seriesRefs) expect(ref).toMatch(/^'?Totals'?!/);
  expect(chart.seriesRefs).toContain(`'Totals'!$C$2:$C$${n + 1}`);

  return { out, exp, n };
}

async function checkRecalculated(out: string, exp: ReturnType<typeof expectedTotals>, n: number) {
  const started = Date.now();
  const rows = await recalculatedSheetCsv(out, 'Totals');
  const ms = Date.now() - started;
  process.stderr.write(`[demo-scripts] LibreOffice recalculation of ${out.split('/').at(-1)} took ${ms} ms\n`);
  expect(rows).toHaveLength(n + 2);
  const seen = new Set<string>();
  for (const row of rows.slice(1, n + 1)) {
    const want = exp.totals.get(row[0]!);
    expect(want, `unexpected region ${row[0]}`).toBeDefined();
    seen.add(row[0]!);
    expect(cents(Number(row[2]))).toBe(cents(want!.value));
    expect(cents(Number(row[1]))).toBe(cents(want!.units));
  }
  expect(seen.size).toBe(exp.totals.size);
  const total = [...exp.totals.values()].reduce((a, t) => a + t.value, 0);
  expect(rows[n + 1]![0]).toBe('Total');
  expect(cents(Number(rows[n + 1]![2]))).toBe(cents(total));
}

describe.skipIf(!runAll)('demo scripts', () => {
  it(`${PYTHON} has openpyxl, python-docx and reportlab`, () => {
    expect(havePython, `${PYTHON} cannot import openpyxl, docx and reportlab`).toBe(true);
  });

  describe('sales_to_xlsx.py', () => {
    const sample: SalesCase = {
      name: 'sample',
      csv: join(examples, 'sales.csv'),
      region: 'region',
      value: 'revenue',
      units: 'units',
    };

    const otherCsv = join(work, 'q3-deals.csv');
    writeFileSync(
      otherCsv,
      [
        'Closed On,Sales Rep,Territory,Qty,"Amount ($)",Stage',
        '2026-07-03,Ines,EMEA,3,"1,250.00",won',
        '2026-07-09,Raj,APAC,1,499.99,won',
        '2026-07-21,Ines,EMEA,2,$980.50,won',
        '2026-08-02,Carla,Americas,5,"3,100.10",won',
        '2026-08-15,Raj,APAC,4,1999.96,won',
        '2026-08-30,Carla,Americas,1,0.01,won',
        '2026-09-04,Ines,EMEA,7,"4,410.35",won',
        '2026-09-18,Ahmed,LATAM,2,760.00,won',
        '2026-09-29,Raj,APAC,1,333.33,won',
        '',
      ].join('\n'),
    );
    const other: SalesCase = { name: 'other', csv: otherCsv, region: 'Territory', value: 'Amount ($)', units: 'Qty' };

    for (const c of [sample, other]) {
      // LibreOffice usually needs 2-3 s per recalculation, more on a busy machine.
      it(`builds Data/Totals sheets with SUMIF formulas and one bar chart (${c.name})`, {
        timeout: 180_000,
      }, async () => {
        const { out, exp, n } = await checkWorkbook(c);
        if (runOffice) await checkRecalculated(out, exp, n);
      });
    }

    it('falls back to the last numeric column and counts rows without a units column', async () => {
      const csv = join(work, 'areas.csv');
      writeFileSync(csv, 'AREA,product,q1,q2\nNorth,A,1,10.5\nSouth,B,2,20\nNorth,C,3,30.25\n');
      const out = join(work, 'areas.xlsx');
      const res = runScript('sales_to_xlsx.py', [csv, out]);
      expect(res.code, res.stderr).toBe(0);
      const summary = jsonLine(res.stdout);
      expect(summary).toMatchObject({ regions: 2, rows: 3, total: 60.75, value_column: 'q2' });
      const book = await readXlsx(readFileSync(out));
      expect(book.formulas.Totals!.C2).toBe('SUMIF(Data!$A:$A,A2,Data!$D:$D)');
      expect(book.formulas.Totals!.B2).toBe('COUNTIF(Data!$A:$A,A2)');
    });

    it('exits 2 with a readable message when there is no numeric column', () => {
      const csv = join(work, 'no-numbers.csv');
      writeFileSync(csv, 'name,region,comment\nAlice,North,great\nBob,South,ok\n');
      const res = runScript('sales_to_xlsx.py', [csv, join(work, 'no-numbers.xlsx')]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/numeric/i);
      expect(res.stderr).toContain('name, region, comment');
      expect(res.stderr).not.toMatch(/Traceback/);
    });

    it('exits 2 with a readable message when there is no region column', () => {
      const csv = join(work, 'no-region.csv');
      writeFileSync(csv, 'date,revenue\n2026-07-01,10\n');
      const res = runScript('sales_to_xlsx.py', [csv, join(work, 'no-region.xlsx')]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/region column/i);
      expect(res.stderr).not.toMatch(/Traceback/);
    });
  });

  describe('notes_to_brief.py', () => {
    it.skipIf(!runOffice)('turns the sample notes into a one-page docx and pdf', async () => {
      const docx = join(work, 'brief.docx');
      const pdf = join(work, 'brief.pdf');
      const res = runScript('notes_to_brief.py', [join(examples, 'meeting-notes.md'), docx, pdf]);
      expect(res.code, res.stderr).toBe(0);
      const summary = jsonLine(res.stdout);
      expect(summary).toMatchObject({
        title: 'Pulse 2.0 launch planning',
        action_items: 7,
        action_table: true,
        pages: 1,
      });

      const text = flat(await docxText(readFileSync(docx)));
      for (const heading of ['Pulse 2.0 launch planning', 'Summary', 'Decisions', 'Risks', 'Action items']) {
        expect(text).toContain(heading);
      }
      const actions: Array<[string, string, string]> = [
        ['Tom', 'Land the query caching fix for large workspaces', 'Sep 25'],
        ['Ana', 'Simplify the alert settings page', 'Sep 30'],
        ['Priya', 'Draft launch blog post + in-app banner copy', 'Oct 2'],
        ['Lars', 'Write support macros and FAQ for the new alerts', 'Oct 9'],
        ['Maya', 'Submit the Slack app for review this week', 'Sep 18'],
        ['Tom + Lars', "Run a load test with the support team's demo workspace", 'Oct 6'],
        ['Maya', 'Decide on the migration guide after talking to 3 customers', 'Sep 28'],
      ];
      for (const [owner, action, due] of actions) {
        // One table row: owner, action and due date in adjacent cells.
        expect(text).toMatch(new RegExp(`${owner.replace('+', '\\+')} ${action.replace('+', '\\+')}[^\\t]*? ${due}`));
      }

      const info = await pdfInfo(pdf);
      expect(info.pages).toBe(1);
      const pdfText = flat(info.text);
      expect(pdfText).toContain('Pulse 2.0 launch planning');
      expect(pdfText).toContain('Land the query caching fix for large workspaces');
    });

    it.skipIf(!runOffice)('handles plain-text notes with Label: sections and inline markers', async () => {
      const notes = join(work, 'ops.txt');
      writeFileSync(
        notes,
        [
          'Weekly ops sync',
          '',
          'Date: 3 March 2026',
          'Present: Jo, Sam, Priya',
          '',
          'Pager load is up 30% since the migration, mostly noisy disk alerts.',
          '',
          'Decision: move to the 2-week rotation starting April 1',
          'Concerns:',
          '* Only two people know the billing runbook',
          '',
          'Next steps:',
          '1. Sam to tune disk alert thresholds by Friday',
          '2. Jo - write the billing runbook (due 2026-03-14)',
          '3. Review on-call pay policy (Owner: Priya)',
          '',
        ].join('\n'),
      );
      const docx = join(work, 'ops.docx');
      const pdf = join(work, 'ops.pdf');
      const res = runScript('notes_to_brief.py', [notes, docx, pdf]);
      expect(res.code, res.stderr).toBe(0);
      expect(jsonLine(res.stdout)).toMatchObject({ title: 'Weekly ops sync', decisions: 1, risks: 1, action_items: 3 });
      const text = flat(await docxText(readFileSync(docx)));
      expect(text).toContain('Meeting date: 3 March 2026');
      expect(text).toContain('Move to the 2-week rotation starting April 1');
      expect(text).toContain('Only two people know the billing runbook');
      expect(text).toContain('Sam Tune disk alert thresholds Friday');
      expect(text).toContain('Jo Write the billing runbook 2026-03-14');
      expect(text).toContain('Priya Review on-call pay policy');
      const info = await pdfInfo(pdf);
      expect(info.pages).toBe(1);
      expect(flat(info.text)).toContain('Weekly ops sync');
    });

    it.skipIf(!runOffice)('keeps long notes to one page by trimming lists', async () => {
      const lines = ['# Quarterly retro', ''];
      for (const section of ['Went well', 'Went badly', 'Ideas']) {
        lines.push(`## ${section}`);
        for (let i = 0; i < 15; i++)
          lines.push(`- ${section} point ${i}: a fairly long remark that wraps onto a second line of text`);
        lines.push('');
      }
      lines.push('## Action items');
      for (let i = 0; i < 25; i++) lines.push(`- Person${i}: follow up on item ${i} -- due Oct ${i + 1}`);
      const notes = join(work, 'retro.md');
      writeFileSync(notes, `${lines.join('\n')}\n`);
      const pdf = join(work, 'retro.pdf');
      const res = runScript('notes_to_brief.py', [notes, join(work, 'retro.docx'), pdf]);
      expect(res.code, res.stderr).toBe(0);
      expect(jsonLine(res.stdout)).toMatchObject({ action_items: 25, trimmed: true, pages: 1 });
      const info = await pdfInfo(pdf);
      expect(info.pages).toBe(1);
      expect(flat(info.text)).toMatch(/…and \d+ more/);
    });

    it('exits 2 with a readable message on empty notes', () => {
      const notes = join(work, 'empty.md');
      writeFileSync(notes, ' \n\n\t\n');
      const res = runScript('notes_to_brief.py', [notes, join(work, 'e.docx'), join(work, 'e.pdf')]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/empty/i);
      expect(res.stderr).not.toMatch(/Traceback/);
    });
  });
});
