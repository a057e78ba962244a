/**
 * The built-in skills' scripts, run inside the real sandbox image from the read-only
 * /skills mounts a run gets, and checked by opening the files they produce.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { builtInSkillsDir, loadSkills, skillMounts } from '../../src/agent/skills/index.ts';
import { containerHardeningProblems, type Sandbox } from '../../src/runner/sandbox/index.ts';
import { describeDocker, useSandboxFixture } from '../helpers/docker.ts';
import { docxText, pdfInfo, readXlsx, unzip } from '../helpers/office.ts';

const catalog = loadSkills([{ kind: 'built-in', path: builtInSkillsDir(), required: true }]);
const mounts = skillMounts(catalog.skills);

async function read(sandbox: Sandbox, path: string): Promise<Buffer> {
  const { stream } = await sandbox.readFileStream(path);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function run(sandbox: Sandbox, command: string, stdin?: string) {
  const r = await sandbox.exec(['bash', '-c', command], { timeoutMs: 120_000, ...(stdin ? { stdin } : {}) });
  if (r.exitCode !== 0) throw new Error(`${command} failed (${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

const docSpec = {
  title: 'Q3 review',
  subtitle: 'Prepared for the leadership sync',
  blocks: [
    { heading: 'Summary', level: 1 },
    { paragraph: 'Revenue grew 12% over Q2 <led by EMEA> & APAC.' },
    { bullets: ['EMEA: 2.1 M', 'Americas: 3.4 M'] },
    { heading: 'Action items', level: 1 },
    { table: { header: ['Owner', 'Action', 'Due'], rows: [['Tom', 'Land the caching fix', 'Sep 25']] } },
    { page_break: true },
    { numbered: ['Appendix item'] },
  ],
};

describeDocker('built-in skills in the sandbox', () => {
  const fixture = useSandboxFixture();
  const hostDir = mkdtemp(join(tmpdir(), 'handoff-skills-files-'));
  afterAll(async () => rm(await hostDir, { recursive: true, force: true }));

  it('mounts each skill read-only under /skills, and the container stays hardened', async () => {
    expect(catalog.problems).toEqual([]);
    const { sandbox } = await fixture.sandbox({ readOnlyMounts: mounts });
    const listed = await run(sandbox, 'ls /skills');
    expect(listed.stdout.split('\n').filter(Boolean)).toEqual(['docx', 'pdf', 'pptx', 'xlsx']);
    const write = await sandbox.exec(['bash', '-c', 'echo x > /skills/pptx/SKILL.md; touch /skills/new; echo done'], {
      timeoutMs: 10_000,
    });
    expect(write.stderr).toMatch(/\/skills\/pptx\/SKILL\.md: Read-only file system/);
    expect(write.stderr).toMatch(/\/skills\/new': Read-only file system/);
    const inspect = await fixture.docker.getContainer(sandbox.id).inspect();
    expect(containerHardeningProblems(inspect)).toEqual([]);
    const skillBinds = (inspect.Mounts ?? []).filter((m) => m.Destination.startsWith('/skills/'));
    expect(skillBinds).toHaveLength(4);
    expect(skillBinds.every((m) => m.RW === false)).toBe(true);
  }, 60_000);

  it('refuses a mount anywhere but one folder under /skills', async () => {
    await expect(
      fixture.sandbox({ readOnlyMounts: [{ hostPath: mounts[0]!.hostPath, containerPath: '/workspace/in/x' }] }),
    ).rejects.toThrow(/only go to one folder each under \/skills/);
    await expect(
      fixture.sandbox({ readOnlyMounts: [{ hostPath: mounts[0]!.hostPath, containerPath: '/skills' }] }),
    ).rejects.toThrow(/only go to one folder each under \/skills/);
  });

  it('pptx: notes_to_deck.js builds a 5-slide deck with speaker notes and a chart', async () => {
    const { sandbox } = await fixture.sandbox({ readOnlyMounts: mounts });
    const notes = await import('node:fs/promises').then((fs) =>
      fs.readFile(new URL('../../examples/deck-notes.md', import.meta.url), 'utf8'),
    );
    await run(sandbox, 'cat > /tmp/notes.md', notes);
    const r = await run(sandbox, 'node /skills/pptx/scripts/notes_to_deck.js /tmp/notes.md /workspace/out/deck.pptx');
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ slides: 5, notes: 5, charts: 1 });
    const entries = unzip(await read(sandbox, '/workspace/out/deck.pptx'));
    const names = [...entries.keys()];
    expect(names.filter((n) => /^ppt\/slides\/slide\d+\.xml$/.test(n))).toHaveLength(5);
    expect(names.filter((n) => /^ppt\/notesSlides\/notesSlide\d+\.xml$/.test(n))).toHaveLength(5);
    expect(names.filter((n) => /^ppt\/charts\/chart\d+\.xml$/.test(n))).toHaveLength(1);
    const slide3 = entries.get('ppt/slides/slide3.xml')!.toString('utf8');
    expect(slide3).toContain('Beta sign-ups by region');
    const notes3 = [...entries.entries()]
      .filter(([n]) => n.startsWith('ppt/notesSlides/'))
      .map(([, b]) => b.toString('utf8'))
      .join('\n');
    expect(notes3).toContain('APAC converts at twice the average');

    // An exact count asked for, and a clear failure when the outline is too short.
    const three = await run(
      sandbox,
      'node /skills/pptx/scripts/notes_to_deck.js /tmp/notes.md /workspace/out/three.pptx --slides 3',
    );
    expect(JSON.parse(three.stdout.trim()).slides).toBe(3);
    const tooMany = await sandbox.exec(
      ['node', '/skills/pptx/scripts/notes_to_deck.js', '/tmp/notes.md', '/workspace/out/x.pptx', '--slides', '9'],
      { timeoutMs: 60_000 },
    );
    expect(tooMany.exitCode).toBe(1);
    expect(tooMany.stderr).toContain('fewer than the 8 content slides asked for');
  }, 120_000);

  it('xlsx: build_xlsx.py writes formulas, formats, a totals row and a chart', async () => {
    const { sandbox } = await fixture.sandbox({ readOnlyMounts: mounts });
    const spec = {
      sheets: [
        {
          name: 'Data',
          columns: [
            { header: 'Region' },
            { header: 'Revenue', format: 'money' },
            { header: 'Share', format: 'percent' },
          ],
          rows: [
            ['EMEA', 2100000, '=B2/SUM(B$2:B$4)'],
            ['Americas', 3400000, '=B3/SUM(B$2:B$4)'],
            ['APAC', 1200000, '=B4/SUM(B$2:B$4)'],
          ],
          totals: { label: 'Total', columns: ['B'] },
          charts: [{ type: 'bar', title: 'Revenue by region', value_columns: [2], anchor: 'E2' }],
        },
      ],
    };
    await run(sandbox, 'cat > /tmp/book.json', JSON.stringify(spec));
    const r = await run(sandbox, 'python3 /skills/xlsx/scripts/build_xlsx.py /tmp/book.json /workspace/out/book.xlsx');
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ sheets: ['Data'], formulas: 4, charts: 1 });
    const book = await readXlsx(await read(sandbox, '/workspace/out/book.xlsx'));
    expect(book.sheets).toEqual(['Data']);
    expect(book.formulas.Data).toMatchObject({ C2: 'B2/SUM(B$2:B$4)', B5: 'SUM(B2:B4)' });
    expect(book.charts).toHaveLength(1);
    expect(book.charts[0]).toMatchObject({ type: 'barChart', title: 'Revenue by region' });
    const formats = await run(
      sandbox,
      `python3 -c "import openpyxl; ws = openpyxl.load_workbook('/workspace/out/book.xlsx')['Data']; print(ws['B2'].number_format, ws['C2'].number_format, ws.freeze_panes)"`,
    );
    expect(formats.stdout.trim()).toBe('#,##0.00 0.0% A2');
  }, 120_000);

  it('docx and pdf: one spec gives a Word document and a PDF with the same content', async () => {
    const { sandbox } = await fixture.sandbox({ readOnlyMounts: mounts });
    await run(sandbox, 'cat > /tmp/doc.json', JSON.stringify(docSpec));
    const d = await run(sandbox, 'python3 /skills/docx/scripts/build_docx.py /tmp/doc.json /workspace/out/doc.docx');
    expect(JSON.parse(d.stdout.trim())).toMatchObject({ headings: 3, tables: 1 });
    const text = await docxText(await read(sandbox, '/workspace/out/doc.docx'));
    expect(text).toContain('Q3 review');
    expect(text).toContain('Revenue grew 12% over Q2 <led by EMEA> & APAC.');
    // The table, cell by cell in reading order.
    expect(text.replace(/\s+/g, ' ')).toContain('Owner Action Due Tom Land the caching fix Sep 25');

    const p = await run(sandbox, 'python3 /skills/pdf/scripts/build_pdf.py /tmp/doc.json /workspace/out/doc.pdf');
    expect(JSON.parse(p.stdout.trim())).toMatchObject({ pages: 2 });
    const pdfPath = join(await hostDir, 'doc.pdf');
    await writeFile(pdfPath, await read(sandbox, '/workspace/out/doc.pdf'));
    const info = await pdfInfo(pdfPath);
    expect(info.pages).toBe(2);
    expect(info.text).toContain('Revenue grew 12% over Q2 <led by EMEA> & APAC.');
    expect(info.text).toContain('Land the caching fix');
  }, 120_000);
});
