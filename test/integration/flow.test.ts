import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { readXlsx } from '../helpers/office.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;

describeDocker('request → plan → approve → sandboxed run → download (demo model)', () => {
  let handoff: TestHandoff;
  let client: ConsoleClient;

  beforeAll(async () => {
    handoff = await startDevHandoff();
    client = new ConsoleClient(handoff.url);
  });
  afterAll(async () => {
    await handoff?.close();
  });

  it('delivers the sales workbook through a signed link', async () => {
    const posted = await client.post(
      '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      [{ name: 'sales.csv', path: salesCsv }],
    );
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    await client.waitForCard(thread, (h) => h.includes('Planning'), 10_000);

    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    expect(card.html).toContain('demo model');
    expect(card.html).toContain('badge-batched');
    expect(card.html).toContain('sales-summary.xlsx');

    const approve = await client.action({ action: 'approve', ...planButtons(card.html!) });
    expect(approve.status).toBe(200);
    const approved = await client.waitForCard(thread, (h) => h.includes('Approved by Ana'), 10_000);
    expect(approved.html).not.toContain('data-action="approve"');

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(result.html).toContain('Done');
    const [file] = links(result.html!);
    expect(file?.name).toBe('sales-summary.xlsx');
    const download = await fetch(new URL(file!.href, handoff.url));
    expect(download.status).toBe(200);
    const bytes = Buffer.from(await download.arrayBuffer());
    const book = await readXlsx(bytes);
    expect(book.sheets).toEqual(expect.arrayContaining(['Data', 'Totals']));
    expect(book.charts).toHaveLength(1);
    await writeFile(join(tmpdir(), 'flow-sales-summary.xlsx'), bytes);

    // A forged signature is refused.
    const forged = new URL(file!.href, handoff.url);
    forged.searchParams.set('sig', 'A'.repeat(43));
    expect((await fetch(forged)).status).toBe(403);
  });

  it('refuses a second approve of the same plan (one run only)', async () => {
    const posted = await client.post('@handoff turn the attached notes into a one-page brief as docx and pdf', [
      { name: 'notes.md', content: await readFile(new URL('../../examples/meeting-notes.md', import.meta.url)) },
    ]);
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    const buttons = planButtons(card.html!);
    const [a, b] = await Promise.all([
      client.action({ action: 'approve', ...buttons }),
      client.action({ action: 'approve', ...buttons }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(
      links(result.html!)
        .map((l) => l.name)
        .sort(),
    ).toEqual(['brief.docx', 'brief.pdf']);
  });

  it('answers a request the demo model cannot handle with how to configure a real model', async () => {
    const posted = await client.post('@handoff write a haiku about our Q3 numbers');
    expect(posted.status).toBe(201);
    const card = await client.waitForCard(posted.body.message!.id, (h) => h.includes('ANTHROPIC_API_KEY'), 30_000);
    expect(card.html).toContain('demo model only handles the bundled sample tasks');
    expect(card.html).not.toContain('card plan');
  });
});
