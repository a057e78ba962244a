/**
 * The console's Instructions & memory panel, as a person uses it: headless Chromium drives
 * the page served by a real Handoff (redis-server, the bot, the runner with Docker sandboxes
 * and the demo model). Under `handoff dev` without approvers, anyone there may change them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumArgs, chromiumPath, missingBrowserComponents } from '../helpers/chromium.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const missing = await missingBrowserComponents();
const required = process.env.HANDOFF_REQUIRE_DOCKER === '1';
if (missing.length > 0 && !required) {
  process.stderr.write(
    `\n!!! SKIPPING the console channel settings e2e tests: missing ${missing.join(', ')}. Set HANDOFF_REQUIRE_DOCKER=1 to make this a failure.\n\n`,
  );
}
if (missing.length > 0 && required) {
  describe('console channel settings e2e', () => {
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

describe.skipIf(missing.length > 0)('console channel settings e2e', () => {
  let handoff: TestHandoff;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    handoff = await startDevHandoff();
    browser = await openBrowser('UTC');
    browser.page.on('pageerror', (err) => pageErrors.push(err.message));
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await handoff?.close();
  });

  it('saves instructions, shows a remembered fact, and forgets it', async () => {
    const { page } = browser;
    await page.goto(handoff.url);
    await page.getByLabel('Display name').fill('Ana');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#name-dialog').waitFor({ state: 'hidden' });
    await page.locator('html[data-ready="true"]').waitFor();

    await page.locator('#channel-settings-toggle').click();
    const panel = page.locator('#channel-settings-list');
    await panel.locator('textarea[name="text"]').fill('Answer in German.');
    await panel.getByRole('button', { name: 'Save instructions' }).click();
    await page.locator('#channel-settings-notice', { hasText: 'Instructions set for this channel' }).waitFor();
    await panel.locator('.channel-instructions p.pre', { hasText: 'Answer in German.' }).waitFor();

    await page.locator('#composer-text').fill('@handoff remember that the EMEA target is 2.1 M');
    await page.locator('#composer-text').press('Enter');
    await page.locator('.card', { hasText: 'Remembered for this channel' }).first().waitFor({ timeout: 30_000 });
    await page.locator('#channel-settings-refresh').click();
    const fact = panel.locator('.channel-memory li', { hasText: 'the EMEA target is 2.1 M' });
    await fact.waitFor();
    await fact.getByRole('button', { name: 'Forget' }).click();
    await page.locator('#channel-settings-notice', { hasText: 'Forgotten' }).waitFor();
    await fact.waitFor({ state: 'detached' });
    expect(await textOf(panel)).toContain('Nothing remembered yet');
    expect(pageErrors).toEqual([]);
  });
});
