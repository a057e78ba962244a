/**
 * Per-user connections in the web console, as a person uses them: headless Chromium drives
 * the page served by a real Handoff (redis-server, the bot, the runner with Docker
 * sandboxes and the demo model) next to the OAuth-protected MCP fake. Connect on the card
 * opens the service's sign-in page in a new tab; the card follows; the Connections panel
 * lists the connection and disconnects it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectors } from '../../src/config/index.ts';
import { type FakeMcpOAuthServer, startMcpOAuthServer } from '../fakes/mcp-oauth-server.ts';
import { chromiumArgs, chromiumPath, missingBrowserComponents } from '../helpers/chromium.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const missing = await missingBrowserComponents();
const required = process.env.HANDOFF_REQUIRE_DOCKER === '1';
if (missing.length > 0 && !required) {
  process.stderr.write(
    `\n!!! SKIPPING the console connections e2e tests: missing ${missing.join(', ')}. Set HANDOFF_REQUIRE_DOCKER=1 to make this a failure.\n\n`,
  );
}
if (missing.length > 0 && required) {
  describe('console connections e2e', () => {
    it('has Chromium, Docker and redis-server (HANDOFF_REQUIRE_DOCKER=1)', () => {
      throw new Error(`HANDOFF_REQUIRE_DOCKER=1 but missing: ${missing.join(', ')}`);
    });
  });
}

async function textOf(locator: Locator): Promise<string> {
  return ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

describe.skipIf(missing.length > 0)('console connections e2e', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-e2e-connections-'));
  let notes: FakeMcpOAuthServer;
  let handoff: TestHandoff;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    // The browser carries no x-fake-user header: the service's consent is Ana's.
    notes = await startMcpOAuthServer({ consentAs: 'ana' });
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, 'version: 1\nchannels:\n  "web:*":\n    connectors: [notes]\n');
    handoff = await startDevHandoff({
      env: { HANDOFF_POLICY: policy },
      connectors: parseConnectors({ notes: { url: notes.mcpUrl, auth: 'oauth', title: 'Fake Notes' } }, 'handoff.yaml'),
    });
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: chromiumPath,
      args: chromiumArgs,
      viewport: { width: 1440, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(err.message));
  }, 180_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await handoff?.close();
    await notes?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('Connect on the card opens the sign-in page in a new tab; the card and the Connections panel follow', async () => {
    await page.goto(handoff.url);
    await page.getByLabel('Display name').fill('Ana');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#name-dialog').waitFor({ state: 'hidden' });
    await page.locator('html[data-ready="true"]').waitFor();

    await page.locator('#composer-text').fill('@handoff find out who I am in Fake Notes');
    await page.locator('#composer-text').press('Enter');
    const card = page.locator('#thread-list .card.connect');
    await card.waitFor({ timeout: 120_000 });
    expect(await textOf(card)).toContain('Ana: Handoff can use Fake Notes as you once you connect it.');

    // Links the page leaves next to the button (for a browser that blocks the tab), as they appear:
    // the card is replaced once Ana has connected.
    await page.evaluate(`(() => {
      const seen = [];
      window.seenLinks = seen;
      new MutationObserver(() => {
        for (const a of document.querySelectorAll('.card.connect .action-notice a'))
          if (!seen.some((s) => s.href === a.href)) seen.push({ href: a.href, target: a.target });
      }).observe(document.body, { subtree: true, childList: true });
    })()`);

    // The click opens the service's page in a new tab; it consents and comes back to Handoff.
    const popup = page.waitForEvent('popup');
    await card.getByRole('button', { name: 'Connect Fake Notes' }).click();
    const tab = await popup;
    await tab.getByText('Connected to Fake Notes.').waitFor({ timeout: 30_000 });
    expect(new URL(tab.url()).origin).toBe(handoff.url);
    await tab.close();
    const seen = (await page.evaluate('window.seenLinks')) as Array<{ href: string; target: string }>;
    expect(seen).toHaveLength(1);
    expect(new URL(seen[0]!.href).origin).toBe(notes.url);
    expect(seen[0]!.target).toBe('_blank');

    // The card follows over the event stream.
    await page.locator('#thread-list .card.connect.connect-connected').waitFor({ timeout: 30_000 });
    expect(await textOf(page.locator('#thread-list .card.connect'))).toContain('Connected by Ana');

    // The Connections panel lists it; Disconnect removes it.
    await page.locator('#connections-toggle').click();
    const item = page.locator('#connections-list .connection-item');
    await item.waitFor();
    expect(await textOf(item)).toContain('Fake Notes connected');
    expect(await textOf(item)).toContain('renewed automatically');
    await item.getByRole('button', { name: 'Disconnect' }).click();
    await page.locator('#connections-notice', { hasText: 'Disconnected Fake Notes' }).waitFor();
    await page.locator('#connections-list').getByRole('button', { name: 'Connect Fake Notes' }).waitFor();
    expect(pageErrors).toEqual([]);
  }, 240_000);
});
