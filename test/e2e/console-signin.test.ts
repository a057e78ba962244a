/**
 * Console sign-in in a real browser: headless Chromium against `handoff bot` (no Docker
 * needed: nothing runs tasks), signing in with a personal link and through a real OpenID
 * provider's pages, and the page showing who is signed in instead of asking for a name.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleUsers } from '../../src/bot/surfaces/web/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { startTestBot, type TestBot } from '../helpers/bot.ts';
import { hasCommand } from '../helpers/office.ts';
import { startOpenIdProvider, type TestOpenIdProvider } from '../helpers/openid-provider.ts';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const chromiumArgs = ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-sync'];

const missing = [
  ...(existsSync(chromiumPath) ? [] : [`Chromium (${chromiumPath}; set CHROMIUM_PATH)`]),
  ...(hasCommand('redis-server') ? [] : ['redis-server']),
];
if (missing.length > 0 && process.env.HANDOFF_REQUIRE_DOCKER !== '1') {
  process.stderr.write(`\n!!! SKIPPING the console sign-in e2e tests: missing ${missing.join(', ')}.\n\n`);
}
if (missing.length > 0 && process.env.HANDOFF_REQUIRE_DOCKER === '1') {
  describe('console sign-in e2e', () => {
    it('has Chromium and redis-server (HANDOFF_REQUIRE_DOCKER=1)', () => {
      throw new Error(`HANDOFF_REQUIRE_DOCKER=1 but missing: ${missing.join(', ')}`);
    });
  });
}

async function openBrowser(): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'handoff-e2e-signin-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath, args: chromiumArgs });
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

describe.skipIf(missing.length > 0)('console sign-in e2e', () => {
  let redis: EmbeddedRedis;
  let records: Redis;
  const redisDir = mkdtempSync(join(tmpdir(), 'handoff-e2e-signin-redis-'));
  beforeAll(async () => {
    redis = await startRedisServer({ dir: redisDir });
    records = new Redis(redis.url);
  });
  afterAll(async () => {
    records?.disconnect();
    await redis?.stop();
    rmSync(redisDir, { recursive: true, force: true });
  });

  describe('with a personal link', () => {
    let bot: TestBot;
    let browser: Awaited<ReturnType<typeof openBrowser>>;
    const pageErrors: string[] = [];
    beforeAll(async () => {
      bot = await startTestBot(redis.url, { HANDOFF_CONSOLE_SIGNIN: 'tokens' });
      browser = await openBrowser();
      browser.page.on('pageerror', (err) => pageErrors.push(err.message));
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
      await bot?.close();
    });

    it('asks to sign in, then shows who is signed in, posts as them, and signs out', async () => {
      const { page } = browser;
      await page.goto(bot.url);
      const signIn = page.locator('#signin-dialog');
      await signIn.waitFor();
      expect(await signIn.textContent()).toContain('personal sign-in link');
      expect(await page.locator('#name-dialog').isVisible()).toBe(false);

      const { token } = await new ConsoleUsers(records).add('Ana Lopez');
      await page.goto(`${bot.url}/?token=${token}`);
      await page.locator('html[data-ready="true"]').waitFor();
      expect(page.url()).toBe(`${bot.url}/`); // the token left the address bar
      expect(await page.locator('#me-name').textContent()).toBe('Ana Lopez');
      expect(await page.locator('#sign-out').isVisible()).toBe(true);
      expect(await page.locator('#change-name').isVisible()).toBe(false);
      expect(await page.locator('#name-dialog').isVisible()).toBe(false);
      expect(await signIn.isVisible()).toBe(false);

      await page.locator('#composer-text').fill('morning, signed in for real');
      await page.locator('#composer-text').press('Enter');
      const mine = page.locator('#channel-list > li', { hasText: 'morning, signed in for real' });
      await mine.waitFor();
      expect(await mine.locator('.author').textContent()).toBe('Ana Lopez');

      await page.locator('#sign-out').click();
      await signIn.waitFor();
      const session = await page.evaluate(async () => (await fetch('/api/session')).json());
      expect(session).toMatchObject({ signin: 'tokens', user: null });
      expect(pageErrors).toEqual([]);
    }, 60_000);
  });

  describe('with OpenID Connect', () => {
    let provider: TestOpenIdProvider;
    let bot: TestBot;
    let browser: Awaited<ReturnType<typeof openBrowser>>;
    beforeAll(async () => {
      provider = await startOpenIdProvider({ 'sub-cleo-9': { name: 'Cleo Park', email: 'cleo@example.test' } });
      bot = await startTestBot(redis.url, {
        HANDOFF_CONSOLE_SIGNIN: 'oidc',
        HANDOFF_OIDC_ISSUER: provider.issuer,
        HANDOFF_OIDC_CLIENT_ID: provider.clientId,
        HANDOFF_OIDC_CLIENT_SECRET: provider.clientSecret,
      });
      provider.register(`${bot.url}/auth/callback`);
      browser = await openBrowser();
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
      await bot?.close();
      await provider?.close();
    });

    it('signs in through the provider’s own login and consent pages', async () => {
      const { page } = browser;
      await page.goto(bot.url);
      await page.locator('#signin-dialog').waitFor();
      await page.locator('#signin-link').click();
      // The provider's development login page, then its consent page.
      await page.locator('input[name="login"]').fill('sub-cleo-9');
      await page.locator('input[name="password"]').fill('any password');
      await page.locator('button[type="submit"]').click();
      await page.locator('button[type="submit"]', { hasText: 'Continue' }).click();
      await page.waitForURL(`${bot.url}/`);
      await page.locator('html[data-ready="true"]').waitFor();
      expect(await page.locator('#me-name').textContent()).toBe('Cleo Park');
      expect(await page.locator('#me-name').getAttribute('title')).toBe('web:oidc:sub-cleo-9');
    }, 60_000);
  });
});
