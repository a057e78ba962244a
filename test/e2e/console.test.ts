/**
 * The web console end to end, as a person uses it: headless Chromium drives the page served by
 * a real Handoff (redis-server, the bot, the runner with Docker sandboxes and the demo model),
 * from the first message to the downloaded spreadsheet, which is then opened and recalculated.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { hasCommand, parseCsv, readXlsx, recalculatedSheetCsv } from '../helpers/office.ts';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const chromiumArgs = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const salesCsvPath = fileURLToPath(new URL('../../examples/sales.csv', import.meta.url));
const request = '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart';

async function missingComponents(): Promise<string[]> {
  const missing: string[] = [];
  if (!existsSync(chromiumPath)) missing.push(`Chromium (${chromiumPath}; set CHROMIUM_PATH)`);
  if (!(await dockerAvailable())) missing.push('Docker with the sandbox image');
  if (!hasCommand('redis-server')) missing.push('redis-server');
  if (!hasCommand('soffice')) missing.push('LibreOffice (soffice)');
  return missing;
}

const missing = await missingComponents();
const required = process.env.HANDOFF_REQUIRE_DOCKER === '1';
if (missing.length > 0 && !required) {
  process.stderr.write(
    `\n!!! SKIPPING the web console e2e tests: missing ${missing.join(', ')}. Set HANDOFF_REQUIRE_DOCKER=1 to make this a failure.\n\n`,
  );
}
if (missing.length > 0 && required) {
  describe('web console e2e', () => {
    it('has Chromium, Docker, redis-server and LibreOffice (HANDOFF_REQUIRE_DOCKER=1)', () => {
      throw new Error(`HANDOFF_REQUIRE_DOCKER=1 but missing: ${missing.join(', ')}`);
    });
  });
}

/**
 * Handoff (`handoff dev`) and a fresh Chromium for one describe block, both closed after
 * it; page errors are collected so a test can assert there were none.
 */
function consoleSession(env?: Record<string, string>) {
  const ctx = {
    handoff: undefined as unknown as TestHandoff,
    browser: undefined as unknown as Awaited<ReturnType<typeof openBrowser>>,
    pageErrors: [] as string[],
  };
  beforeAll(async () => {
    ctx.handoff = await startDevHandoff(env ? { env } : {});
    ctx.browser = await openBrowser();
    ctx.browser.page.on('pageerror', (err) => ctx.pageErrors.push(err.message));
  }, 180_000);
  afterAll(async () => {
    await ctx.browser?.close();
    await ctx.handoff?.close();
  });
  return ctx;
}

/** A browser with a fresh profile, removed on close. */
async function openBrowser(): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'handoff-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    args: chromiumArgs,
    viewport: { width: 1440, height: 900 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the console and answers the one-time display-name prompt. */
async function openConsoleAs(page: Page, url: string, name: string): Promise<void> {
  await page.goto(url);
  const nameInput = page.getByLabel('Display name');
  await nameInput.waitFor();
  await nameInput.fill(name);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#name-dialog').waitFor({ state: 'hidden' });
  await page.locator('html[data-ready="true"]').waitFor();
}

async function textOf(locator: Locator): Promise<string> {
  return ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

/** Revenue per region, summed straight from the CSV. */
function revenueByRegion(csvPath: string): Map<string, number> {
  const [header, ...rows] = parseCsv(readFileSync(csvPath, 'utf8')).filter((r) => r.some((c) => c.trim() !== ''));
  const region = header!.indexOf('region');
  const revenue = header!.indexOf('revenue');
  const sums = new Map<string, number>();
  for (const row of rows) sums.set(row[region]!, (sums.get(row[region]!) ?? 0) + Number(row[revenue]));
  return sums;
}

describe.skipIf(missing.length > 0)('web console e2e', () => {
  describe('a request from message to spreadsheet', () => {
    const ctx = consoleSession();
    const outDir = mkdtempSync(join(tmpdir(), 'handoff-e2e-'));

    it('hands off the sales CSV, approves the plan and delivers a workbook with live formulas and a chart', async () => {
      const { page } = ctx.browser;
      await openConsoleAs(page, ctx.handoff.url, 'Ana');
      expect(await textOf(page.locator('#me-name'))).toBe('Ana');
      expect(await page.locator('#demo-banner').isVisible()).toBe(true);
      expect(await textOf(page.locator('#demo-banner'))).toContain('set ANTHROPIC_API_KEY to use Claude');

      const composer = page.locator('#composer-text');
      const composerError = page.locator('#composer-error');

      // An empty message is refused where the person typed, and the server refuses one too.
      await composer.fill('   ');
      await composer.press('Enter');
      await composerError.filter({ hasText: /empty/i }).waitFor();
      const emptyForm = new FormData();
      emptyForm.set('channel', 'general');
      emptyForm.set('author', 'Ana');
      emptyForm.set('text', '');
      const emptyRes = await fetch(new URL('/api/console/messages', ctx.handoff.url), {
        method: 'POST',
        body: emptyForm,
        headers: { origin: new URL(ctx.handoff.url).origin },
      });
      expect(emptyRes.status).toBe(400);
      expect(((await emptyRes.json()) as { error: string }).error).toMatch(/empty/i);

      // A message without @handoff is just chat.
      const chatText = 'Morning all, the July numbers are in the shared drive';
      await composer.fill(chatText);
      await composer.press('Enter');
      const chatMessage = page.locator('#channel-list > li', { hasText: chatText });
      await chatMessage.waitFor();
      expect(await textOf(composerError)).toBe('');
      const chatId = await chatMessage.getAttribute('data-id');

      // The request, with the CSV attached through the file picker.
      await page.locator('#composer-files').setInputFiles(salesCsvPath);
      await page.locator('#composer .chip', { hasText: 'sales.csv' }).waitFor();
      await composer.fill(request);
      const sentAt = Date.now();
      await composer.press('Enter');
      const root = page.locator('#channel-list > li', { hasText: 'summarise the attached sales CSV' });
      await root.waitFor();
      expect(await composer.inputValue()).toBe('');
      expect(await textOf(root.locator('.attachments'))).toContain('sales.csv');
      const rootId = await root.getAttribute('data-id');

      // The thread opens on the request and says it is planning, quickly.
      const thread = page.locator('#thread');
      await thread.waitFor();
      if ((await page.locator('#thread-root li.message').getAttribute('data-id')) !== rootId) {
        await root.locator('[data-open-thread]').first().click();
      }
      await page
        .locator('#thread-list')
        .getByText(/planning…/i)
        .waitFor({ timeout: 10_000 });
      const planningAfterMs = Date.now() - sentAt;

      // The plan card: demo model, steps with trust badges, Approve and Deny.
      const planCard = page.locator('#thread-list .card', { has: page.locator('[data-action="approve"]') });
      await planCard.waitFor({ timeout: 120_000 });
      const planText = await textOf(planCard);
      expect(planText).toMatch(/demo model/i);
      const steps = planCard.locator('ol > li');
      expect(await steps.count()).toBeGreaterThanOrEqual(1);
      for (const step of await steps.all()) {
        expect(await step.locator('.badge').getAttribute('class')).toMatch(
          /badge-(autonomous|batched|watched|forbidden)/,
        );
      }
      expect(await planCard.locator('[data-action="deny"]').isVisible()).toBe(true);

      await planCard.locator('[data-action="approve"]').click();
      await page
        .locator('#thread-list .card')
        .filter({ hasText: /approved by Ana/i })
        .waitFor({ timeout: 30_000 });

      // The result card links the spreadsheet; a click downloads it.
      const link = page.locator('#thread-list .card a', { hasText: 'sales-summary.xlsx' });
      await link.waitFor({ timeout: 180_000 });
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      const xlsxPath = join(outDir, 'sales-summary.xlsx');
      await download.saveAs(xlsxPath);
      const xlsx = readFileSync(xlsxPath);
      expect(xlsx.subarray(0, 2).toString()).toBe('PK');

      // The same link works outside the page too (it is a signed download URL).
      const href = await link.getAttribute('href');
      const fetched = await ctx.browser.context.request.get(new URL(href!, ctx.handoff.url).href);
      expect(fetched.status()).toBe(200);
      expect(Buffer.compare(await fetched.body(), xlsx)).toBe(0);

      const book = await readXlsx(xlsx);
      expect(book.sheets).toContain('Totals');
      const totalsFormulas = Object.values(book.formulas.Totals ?? {});
      expect(totalsFormulas.filter((f) => /SUMIF\(/i.test(f)).length).toBeGreaterThanOrEqual(1);
      expect(book.charts).toHaveLength(1);
      expect(book.charts[0]!.type).toBe('barChart');

      // LibreOffice recalculates the formulas; each region's total equals the CSV's sum.
      const expected = revenueByRegion(salesCsvPath);
      const [totalsHeader, ...totalsRows] = await recalculatedSheetCsv(xlsxPath, 'Totals');
      const revenueCol = totalsHeader!.findIndex((h) => /revenue/i.test(h));
      expect(revenueCol).toBeGreaterThan(0);
      const actual = new Map<string, number>();
      for (const row of totalsRows) {
        const name = row[0]?.trim();
        if (name && expected.has(name)) actual.set(name, Number(row[revenueCol]));
      }
      expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [region, sum] of expected) expect(actual.get(region)).toBeCloseTo(sum, 2);

      // Back in the channel, the request shows its replies and the latest bot status.
      const summary = await textOf(root.locator('.thread-summary'));
      expect(summary).toMatch(/\d+ repl(y|ies)/);
      expect(summary).toMatch(/done/i);

      // The plain chat message never got a bot reply.
      const listed = (await (
        await fetch(new URL('/api/console/messages?channel=general', ctx.handoff.url))
      ).json()) as {
        messages: Array<{ id: string; threadId: string }>;
      };
      expect(listed.messages.filter((m) => m.threadId === chatId && m.id !== chatId)).toEqual([]);
      expect(await chatMessage.locator('.replies-button').count()).toBe(0);

      const screenshot = join(outDir, 'console-thread.png');
      await page.screenshot({ path: screenshot });
      console.log(`web console screenshot: ${screenshot} (planning… shown after ${planningAfterMs} ms)`);
      expect(ctx.pageErrors).toEqual([]);
    }, 330_000);
  });

  describe('with a 2000-byte upload limit', () => {
    const ctx = consoleSession({ HANDOFF_MAX_UPLOAD_BYTES: '2000' });

    it('refuses a file over the limit with a clear message, in the page and at the server', async () => {
      const { page } = ctx.browser;
      await openConsoleAs(page, ctx.handoff.url, 'Ana');
      const session = (await (await fetch(new URL('/api/session', ctx.handoff.url))).json()) as {
        maxUploadBytes: number;
      };
      expect(session.maxUploadBytes).toBe(2000);

      // sales.csv is about 2.3 KB: refused right away, nothing attached.
      await page.locator('#composer-files').setInputFiles(salesCsvPath);
      await page
        .locator('#composer-error')
        .filter({ hasText: /sales\.csv is 2\.3 KB: too large.*at most 2000 bytes/ })
        .waitFor();
      expect(await page.locator('#composer .chip').count()).toBe(0);

      // The server enforces the same limit for any client.
      const form = new FormData();
      form.set('channel', 'general');
      form.set('author', 'Ana');
      form.set('text', request);
      form.append('files', new Blob([readFileSync(salesCsvPath)], { type: 'text/csv' }), 'sales.csv');
      const res = await fetch(new URL('/api/console/messages', ctx.handoff.url), {
        method: 'POST',
        body: form,
        headers: { origin: new URL(ctx.handoff.url).origin },
      });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: string }).error).toMatch(/limit/i);

      // A small file is still fine: it becomes a chip with its size.
      const smallDir = mkdtempSync(join(tmpdir(), 'handoff-e2e-small-'));
      const small = join(smallDir, 'small.csv');
      writeFileSync(small, 'date,region,product,units,unit_price,revenue\n2026-07-01,South,Team Plan,1,79.00,79.00\n');
      await page.locator('#composer-files').setInputFiles(small);
      await page.locator('#composer .chip', { hasText: 'small.csv' }).waitFor();
      expect(await textOf(page.locator('#composer-error'))).toBe('');
      rmSync(smallDir, { recursive: true, force: true });
    }, 60_000);
  });

  describe('Request changes on a plan card', () => {
    const ctx = consoleSession();

    it('opens a form under the card, sends the change, and the revised card replaces the old one', async () => {
      const { page } = ctx.browser;
      await openConsoleAs(page, ctx.handoff.url, 'Ana');
      await page.locator('#composer-files').setInputFiles(salesCsvPath);
      await page.locator('#composer .chip', { hasText: 'sales.csv' }).waitFor();
      await page.locator('#composer-text').fill(request);
      await page.locator('#composer-text').press('Enter');

      const v1 = page.locator('#thread-list .card.plan', { hasText: 'Plan v1' });
      await v1.locator('[data-action="request-changes"]').waitFor({ timeout: 120_000 });
      await v1.locator('[data-action="request-changes"]').click();
      const form = page.locator('#thread-list .changes-form');
      await form.waitFor();
      // An empty change is refused in the form, without a request.
      await form.getByRole('button', { name: 'Send' }).click();
      await form.getByText('Say what should change.').waitFor();
      await form.locator('textarea').fill('also add a chart of units per product');
      await form.getByRole('button', { name: 'Send' }).click();

      const v2 = page.locator('#thread-list .card.plan', { hasText: 'Plan v2' });
      await v2.waitFor({ timeout: 120_000 });
      expect(await textOf(v2)).toContain('Revised after Ana asked: “also add a chart of units per product”');
      // The demo model re-plans the same sample: the diff says nothing changed.
      expect(await textOf(v2)).toContain('Same steps, files and limits as before.');
      expect(await v2.locator('[data-action="approve"]').isVisible()).toBe(true);
      await v1.getByText(/Replaced by a newer plan version after Ana asked for changes/).waitFor();
      expect(await v1.locator('[data-action]').count()).toBe(0);
      expect(ctx.pageErrors).toEqual([]);
    }, 300_000);
  });
});
