/**
 * The console's Grants panel, as approvers and others use it: headless Chromium drives the
 * page served by a real Handoff (redis-server, the bot, the runner with Docker sandboxes and
 * the demo model). A channel grant is stored as the approval card's "Always allow in this
 * channel" stores it; the panel lists it, escaped, for the channel's approver, refuses
 * everyone else in words, and revokes it (audited as `grant.revoked`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../src/core/index.ts';
import { GrantStore } from '../../src/storage/index.ts';
import { chromiumArgs, chromiumPath, missingBrowserComponents } from '../helpers/chromium.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const missing = await missingBrowserComponents();
const required = process.env.HANDOFF_REQUIRE_DOCKER === '1';
if (missing.length > 0 && !required) {
  process.stderr.write(
    `\n!!! SKIPPING the console grants e2e tests: missing ${missing.join(', ')}. Set HANDOFF_REQUIRE_DOCKER=1 to make this a failure.\n\n`,
  );
}
if (missing.length > 0 && required) {
  describe('console grants e2e', () => {
    it('has Chromium, Docker and redis-server (HANDOFF_REQUIRE_DOCKER=1)', () => {
      throw new Error(`HANDOFF_REQUIRE_DOCKER=1 but missing: ${missing.join(', ')}`);
    });
  });
}

// Console people are `web:<name>`: Bo approves in #general, Dan is nobody special.
const policyYaml = `version: 1
channels:
  "web:general":
    approvers:
      users: ["web:bo"]
    standingGrants: { allow: true, maxDays: 7 }
`;

/** Markup where text belongs: rendered, it would run script or add an element. */
const hostile = '<img src=x onerror="window.__pwned=1"><b id="injected">bold</b>';

/** A channel grant shaped as the approval card's "Always allow in this channel" stores it. */
function channelGrant(id: string, pattern: string, description: string, createdBy: Grant['createdBy']): Grant {
  const now = Date.now();
  return {
    id,
    pattern,
    action: pattern.startsWith('egress:') ? 'network_egress' : 'connector_write',
    scope: 'channel',
    surface: 'web',
    channel: 'general',
    taskId: 'task-grants-e2e',
    runId: 'run-grants-e2e',
    approvalId: `approval-${id}`,
    description,
    createdBy,
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 7 * 24 * 3600_000).toISOString(),
  };
}

/** A browser with a fresh profile, removed on close. */
async function openBrowser(): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'handoff-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    args: chromiumArgs,
    viewport: { width: 1440, height: 900 },
    timezoneId: 'UTC',
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

/** Names the person in the console's name dialog (first visit, or "Change name"). */
async function nameAs(page: Page, name: string): Promise<void> {
  if (!(await page.locator('#name-dialog').evaluate((d) => (d as unknown as { open: boolean }).open)))
    await page.locator('#change-name').click();
  await page.getByLabel('Display name').fill(name);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#name-dialog').waitFor({ state: 'hidden' });
}

describe.skipIf(missing.length > 0)('console grants e2e', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-grants-e2e-'));
  let handoff: TestHandoff;
  let redis: Redis;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, policyYaml);
    handoff = await startDevHandoff({ env: { HANDOFF_POLICY: policy } });
    redis = new Redis(handoff.redisUrl);
    browser = await openBrowser();
    browser.page.on('pageerror', (err) => pageErrors.push(err.message));
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    redis?.disconnect();
    await handoff?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists a channel grant for its approver, escaped, refuses others, and revokes it (audited)', async () => {
    const store = new GrantStore(redis, 24 * 3600_000);
    const connector = channelGrant(
      'grant-e2e-connector',
      'connector:records__create_record',
      `the connector tool records__create_record (any arguments) ${hostile}`,
      { id: 'web:bo', name: 'Bo <script>' },
    );
    const egress = channelGrant('grant-e2e-egress', 'egress:api.example.com', 'reaching api.example.com', {
      id: 'web:bo',
      name: 'Bo',
    });
    await store.create(connector);
    await store.create(egress);

    const { page } = browser;
    await page.goto(handoff.url);
    await nameAs(page, 'Dan');
    await page.locator('html[data-ready="true"]').waitFor();

    // Dan is no approver in #general: the panel says so and lists nothing.
    await page.locator('#grants-toggle').click();
    await page
      .locator('#grants-notice.is-error', { hasText: "only the channel's approvers may list its grants" })
      .waitFor();
    const list = page.locator('#grants-list');
    expect(await list.locator('li').count()).toBe(0);

    // Bo, the approver, sees both grants: the pattern in words and as recorded, scope, who, when, until when.
    await nameAs(page, 'Bo');
    await page.locator('#grants-refresh').click();
    const item = list.locator('li.grant-item', { hasText: 'records__create_record' });
    await item.waitFor();
    expect(await list.locator('li.grant-item').count()).toBe(2);
    expect(await textOf(item.locator('.grant-pattern'))).toBe('connector:records__create_record');
    const text = await textOf(item);
    expect(text).toContain('the connector tool records__create_record (any arguments)');
    expect(text).toContain('in this channel');
    expect(text).toContain('Granted by Bo <script>');
    expect(text).toContain(`on ${connector.createdAt.replace('T', ' ').slice(0, 16)} UTC`);
    expect(text).toContain(`until ${connector.expiresAt.replace('T', ' ').slice(0, 16)} UTC`);
    // Escaped: the markup is text on screen, no element was made and no script ran.
    expect(text).toContain(hostile);
    expect(await page.locator('#grants-panel img, #grants-panel #injected, #grants-panel script').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await textOf(list.locator('li.grant-item', { hasText: 'api.example.com' }))).toContain(
      'reaching api.example.com',
    );

    // Revoke: the gateway's words, the item gone, the other grant still there.
    await item.getByRole('button', { name: 'Revoke' }).click();
    await page.locator('#grants-notice', { hasText: 'Revoked:' }).waitFor();
    expect(await textOf(page.locator('#grants-notice'))).toContain('now needs an approval again');
    await item.waitFor({ state: 'detached' });
    expect(await list.locator('li.grant-item').count()).toBe(1);
    expect((await store.forChannel({ surface: 'web', channel: 'general' })).map((g) => g.id)).toEqual([egress.id]);
    expect((await store.get(connector.id))?.revokedBy).toEqual({ id: 'web:bo', name: 'Bo' });

    // The last one: the panel says there are none.
    await list.locator('li.grant-item').getByRole('button', { name: 'Revoke' }).click();
    await list.locator('.card.grants', { hasText: 'No standing grants in this channel' }).waitFor();

    const audit = (await redis.lrange('hf:audit', 0, -1)).map(
      (r) => JSON.parse(r) as { type: string; actor?: string; data: Record<string, unknown> },
    );
    const revoked = audit.filter((r) => r.type === 'grant.revoked');
    expect(revoked.map((r) => [r.actor, r.data.grantId, r.data.pattern, r.data.scope, r.data.channel])).toEqual([
      ['web:bo', connector.id, connector.pattern, 'channel', 'web:general'],
      ['web:bo', egress.id, egress.pattern, 'channel', 'web:general'],
    ]);
    expect(pageErrors).toEqual([]);
  }, 240_000);
});
