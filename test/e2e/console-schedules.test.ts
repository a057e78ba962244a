/**
 * Scheduled briefs in the web console, as a person uses them: headless Chromium (in the
 * Europe/Berlin zone) drives the page served by a real Handoff (redis-server, the bot, the
 * runner with Docker sandboxes and the demo model). A schedule typed with the sales CSV
 * attached, approved on its card, then Run now from the Schedules panel posts the brief in
 * the channel.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { hasCommand } from '../helpers/office.ts';

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
const message = '@handoff every weekday at 9:00: a sales brief from the attached CSV';

async function missingComponents(): Promise<string[]> {
  const missing: string[] = [];
  if (!existsSync(chromiumPath)) missing.push(`Chromium (${chromiumPath}; set CHROMIUM_PATH)`);
  if (!(await dockerAvailable())) missing.push('Docker with the sandbox image');
  if (!hasCommand('redis-server')) missing.push('redis-server');
  return missing;
}

const missing = await missingComponents();
const required = process.env.HANDOFF_REQUIRE_DOCKER === '1';
if (missing.length > 0 && !required) {
  process.stderr.write(
    `\n!!! SKIPPING the console schedules e2e tests: missing ${missing.join(', ')}. Set HANDOFF_REQUIRE_DOCKER=1 to make this a failure.\n\n`,
  );
}
if (missing.length > 0 && required) {
  describe('console schedules e2e', () => {
    it('has Chromium, Docker and redis-server (HANDOFF_REQUIRE_DOCKER=1)', () => {
      throw new Error(`HANDOFF_REQUIRE_DOCKER=1 but missing: ${missing.join(', ')}`);
    });
  });
}

/** A browser with a fresh profile in the given zone, removed on close. */
async function openBrowser(
  timezoneId: string,
): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'handoff-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    args: chromiumArgs,
    viewport: { width: 1440, height: 900 },
    timezoneId,
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

async function textOf(locator: Locator): Promise<string> {
  return ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

describe.skipIf(missing.length > 0)('console schedules e2e', () => {
  let handoff: TestHandoff;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    handoff = await startDevHandoff();
    browser = await openBrowser('Europe/Berlin');
    browser.page.on('pageerror', (err) => pageErrors.push(err.message));
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await handoff?.close();
  });

  it('creates a schedule with the CSV, approves it, and Run now in the Schedules panel posts the brief', async () => {
    const { page } = browser;
    await page.goto(handoff.url);
    await page.getByLabel('Display name').fill('Ana');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#name-dialog').waitFor({ state: 'hidden' });
    await page.locator('html[data-ready="true"]').waitFor();
    // The console has no direct messages: Ana's notices have a channel of their own.
    expect(await page.locator('#notices-link').getAttribute('href')).toBe('/?channel=dm-ana');

    // Type the schedule with the CSV attached.
    await page.locator('#composer-files').setInputFiles(salesCsvPath);
    await page.locator('#composer .chip', { hasText: 'sales.csv' }).waitFor();
    await page.locator('#composer-text').fill(message);
    await page.locator('#composer-text').press('Enter');
    const root = page.locator('#channel-list > li', { hasText: 'every weekday at 9:00: a sales brief' });
    await root.waitFor();
    expect(await textOf(page.locator('#composer-error'))).toBe('');

    // The thread opens on it; the plan card shows the schedule on top, in the browser's zone.
    const plan = page.locator('#thread-list .card.plan', { has: page.locator('.schedule-info') });
    await plan.locator('[data-action="approve"]').waitFor({ timeout: 120_000 });
    const schedule = await textOf(plan.locator('.schedule-info'));
    expect(schedule).toContain('Schedule: every weekday (Mon–Fri) at 09:00');
    expect(schedule).toContain("Europe/Berlin (the requester's zone)");
    expect(await plan.locator('.next-runs li').count()).toBe(3);
    expect(schedule).toContain('#general');
    if (process.env.HANDOFF_E2E_SHOTS) await plan.screenshot({ path: join(tmpdir(), 'console-schedules-plan.png') });

    await plan.locator('[data-action="approve"]').click();
    await page
      .locator('#thread-list .card')
      .filter({ hasText: /approved by Ana/i })
      .waitFor({ timeout: 30_000 });
    await page.locator('#thread-list .card', { hasText: /Schedule s_[\w-]+ is active/ }).waitFor({ timeout: 30_000 });

    // The Schedules panel lists it with its buttons.
    await page.locator('#schedules-toggle').click();
    const item = page.locator('#schedules-list .schedule-item');
    await item.waitFor();
    expect(await page.locator('#schedules-toggle').getAttribute('aria-expanded')).toBe('true');
    const itemText = await textOf(item);
    expect(itemText).toContain('every weekday (Mon–Fri) at 09:00');
    expect(itemText).toContain('a sales brief from the attached CSV');
    expect(itemText).toContain('active');

    await item.getByRole('button', { name: 'Run now' }).click();
    await page.locator('#schedules-notice', { hasText: 'Running now' }).waitFor();

    // The brief arrives as a new message in the channel, with its body and its files.
    const brief = page.locator('#channel-list > li .card.brief.brief-posted');
    await brief.waitFor({ timeout: 180_000 });
    expect(await brief.locator('.brief-body li').count()).toBeGreaterThanOrEqual(3);
    await brief.locator('a', { hasText: 'sales-brief.md' }).waitFor();
    await brief.locator('a', { hasText: 'sales-brief.pdf' }).waitFor();
    expect(await textOf(brief)).toContain('run by hand');
    const screenshot = join(tmpdir(), 'console-schedules.png');
    await page.screenshot({ path: screenshot });
    console.log(`console schedules screenshot: ${screenshot}`);

    // Pause and resume from the panel; the list follows.
    await item.getByRole('button', { name: 'Pause' }).click();
    await page.locator('#schedules-notice', { hasText: /^Paused/ }).waitFor();
    await item.locator('.badge-paused').waitFor();
    await item.getByRole('button', { name: 'Resume' }).click();
    await page.locator('#schedules-notice', { hasText: /^Resumed/ }).waitFor();
    await item.locator('.badge-active').waitFor();

    // A time the rule reader cannot read is refused where it was typed… then a good one.
    await item.getByRole('button', { name: 'Edit…' }).click();
    const edit = item.locator('.schedule-edit-form');
    await edit.getByLabel('New time').fill('every blue moon');
    await edit.getByRole('button', { name: 'Save' }).click();
    await page.locator('#schedules-notice.is-error', { hasText: 'could not read "every blue moon"' }).waitFor();
    await edit.getByLabel('New time').fill('every Monday at 8:00');
    await edit.getByRole('button', { name: 'Save' }).click();
    await page.locator('#schedules-notice', { hasText: 'Changed: now every Monday at 08:00' }).waitFor();
    await item.filter({ hasText: 'every Monday at 08:00' }).waitFor();

    // Delete asks first.
    await item.getByRole('button', { name: 'Delete…' }).click();
    await item.locator('.schedule-confirm').getByRole('button', { name: 'Delete' }).click();
    await page.locator('#schedules-notice', { hasText: /^Deleted/ }).waitFor();
    await page.locator('#schedules-list', { hasText: 'No schedules here yet' }).waitFor();

    expect(pageErrors).toEqual([]);
  }, 330_000);

  it('offers Schedule… on a finished result: it asks when, then proposes the schedule in a new thread', async () => {
    const { page } = browser;
    await page.locator('#composer-files').setInputFiles(salesCsvPath);
    await page.locator('#composer .chip', { hasText: 'sales.csv' }).waitFor();
    await page.locator('#composer-text').fill('@handoff a sales brief from the attached CSV');
    await page.locator('#composer-text').press('Enter');
    const plan = page.locator('#thread-list .card.plan', { hasText: 'Plan v1' });
    await plan.locator('[data-action="approve"]').waitFor({ timeout: 120_000 });
    expect(await plan.locator('.schedule-info').count()).toBe(0);
    await plan.locator('[data-action="approve"]').click();

    const result = page.locator('#thread-list .card.result');
    await result.locator('[data-action="schedule-task"]').waitFor({ timeout: 180_000 });
    await result.getByRole('button', { name: 'Schedule…' }).click();
    const form = result.locator('.schedule-task-form');
    await form.getByLabel('When?').fill('every day at 7:00');
    await form.getByRole('button', { name: 'Schedule' }).click();

    // The proposal is a new top-level message; its thread opens with the standing plan's card.
    const root = page.locator('#channel-list > li', { hasText: 'Ana asked to run this again, every day at 7:00' });
    await root.waitFor({ timeout: 30_000 });
    const rootId = await root.getAttribute('data-id');
    await page.locator(`#thread-root li.message[data-id="${rootId}"]`).waitFor({ timeout: 10_000 });
    const proposal = page.locator('#thread-list .card.plan .schedule-info');
    await proposal.waitFor({ timeout: 120_000 });
    expect(await textOf(proposal)).toContain('Schedule: every day at 07:00');
    expect(await textOf(proposal)).toContain('Europe/Berlin');
    expect(pageErrors).toEqual([]);
  }, 330_000);

  it("opens the person's own notices channel from the sidebar", async () => {
    const { page } = browser;
    await page.locator('#notices-link').click();
    await page.waitForURL(/\?channel=dm-ana$/);
    await page.locator('html[data-ready="true"]').waitFor();
    expect(await textOf(page.locator('#channel-name'))).toBe('dm-ana');
    expect(await page.locator('#notices-link').getAttribute('aria-current')).toBe('page');
    expect(await page.locator('#channel-link').getAttribute('aria-current')).toBeNull();
    await page.getByText('Nothing for you yet').waitFor();
    await page.locator('#channel-link').click();
    await page.waitForURL((url) => url.search === '');
    await page.locator('#channel-list > li .card.brief').first().waitFor();
    expect(pageErrors).toEqual([]);
  });
});
