import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;

describeDocker('a plan nobody approves in time expires', () => {
  let handoff: TestHandoff;
  beforeAll(async () => {
    handoff = await startDevHandoff({ env: { HANDOFF_APPROVAL_EXPIRY_MS: '10000' } });
  });
  afterAll(async () => {
    await handoff?.close();
  });

  it('marks the card expired and refuses a late click', async () => {
    const client = new ConsoleClient(handoff.url);
    const posted = await client.post('@handoff summarise the attached sales CSV into a spreadsheet', [
      { name: 'sales.csv', path: salesCsv },
    ]);
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    expect(card.html).toContain('Open for approval until');
    const expired = await client.waitForCard(thread, (h) => h.includes('Expired: nobody approved it in time'), 30_000);
    expect(expired.html).not.toContain('data-action="approve"');
    const late = await client.action({ action: 'approve', ...planButtons(card.html!) });
    expect(late.status).toBe(409);
    expect(late.body.error).toContain('expired');
  }, 60_000);
});
