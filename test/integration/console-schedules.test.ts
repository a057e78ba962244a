/**
 * Scheduled briefs through the web console's HTTP API, against a real Handoff (`handoff dev`:
 * redis-server, the bot, the runner with Docker sandboxes and the demo model): a schedule
 * proposed in a message, its plan card, approval, the Schedules list and its buttons, a
 * brief posted as a new top-level message, and the refusals people see.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
const csv = [{ name: 'sales.csv', path: salesCsv }];
const scheduleMessage = '@handoff every weekday at 9:00: a sales brief from the attached CSV';

describeDocker('schedules in the web console (demo model, Docker sandbox)', () => {
  let handoff: TestHandoff;
  let client: ConsoleClient;
  /** The schedule the first test creates; the next ones manage it. */
  let scheduleId = '';

  beforeAll(async () => {
    handoff = await startDevHandoff();
    client = new ConsoleClient(handoff.url);
  });
  afterAll(async () => {
    await handoff?.close();
  });

  it('proposes a schedule from a message, shows it on the plan card, and Run now posts a brief', async () => {
    const posted = await client.post(scheduleMessage, csv, undefined, { tz: 'Europe/Berlin' });
    expect(posted.status, posted.body.error).toBe(201);
    const thread = posted.body.message!.id;
    expect(posted.body.message!.files).toEqual([expect.objectContaining({ name: 'sales.csv' })]);
    await client.waitForCard(thread, (h) => h.includes('Drafting the standing plan'), 10_000);

    // The plan card: the schedule on top (words, the browser's zone and why, the next runs), then the plan.
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    const html = card.html!;
    expect(html.indexOf('schedule-info')).toBeLessThan(html.indexOf('Plan v1'));
    expect(html).toContain('Schedule: every weekday (Mon–Fri) at 09:00');
    expect(html).toContain('Europe/Berlin');
    expect(html).toContain('the requester&#39;s zone');
    const nextRuns = [...(/<ul class="next-runs">(.*?)<\/ul>/.exec(html)?.[1] ?? '').matchAll(/<li>(.*?)<\/li>/g)];
    expect(nextRuns).toHaveLength(3);
    for (const [, run] of nextRuns) expect(run).toMatch(/^(Mon|Tue|Wed|Thu|Fri) .* 09:00 /);
    expect(html).toContain('#general');
    expect(html).toContain('sales-brief.md');
    expect(html).toContain('demo model');

    const approve = await client.action({ action: 'approve', ...planButtons(html) });
    expect(approve.status, approve.body.error).toBe(200);
    scheduleId = /schedule (s_[\w-]+) is active/.exec(approve.body.message ?? '')?.[1] ?? '';
    expect(scheduleId, approve.body.message).not.toBe('');
    await client.waitForCard(thread, (h) => h.includes(`Schedule ${scheduleId} is active`), 10_000);

    // The Schedules panel lists it, with its buttons.
    const list = await client.schedules();
    expect(list.status).toBe(200);
    expect(list.body.schedules?.items).toEqual([
      expect.objectContaining({ id: scheduleId, status: 'active', tz: 'Europe/Berlin' }),
    ]);
    for (const op of ['pause', 'run_now', 'edit', 'delete'])
      expect(list.body.html).toContain(`data-schedule-op="${op}" data-schedule="${scheduleId}"`);

    const before = new Set((await client.messages()).map((m) => m.id));
    const run = await client.action({ action: 'schedule', op: 'run_now', scheduleId, channel: 'general' });
    expect(run.status, run.body.error).toBe(200);
    expect(run.body.message).toMatch(/Running now/);

    // A new top-level message: "preparing" first, then edited in place into the brief.
    const brief = await client.waitForMessage(
      (m) => !before.has(m.id) && m.author.bot && (m.html ?? '').includes('card brief'),
      30_000,
    );
    expect(brief.threadId).toBe(brief.id);
    const done = await client.waitForMessage(
      (m) => m.id === brief.id && /brief-(posted|failed|cancelled)/.test(m.html ?? ''),
      180_000,
    );
    expect(done.html).toContain('brief-posted');
    expect(done.html).toContain('run by hand');
    expect(done.html).toContain(`schedule ${scheduleId}`);
    // The markdown brief is shown in the message, escaped and lightly formatted.
    expect(done.html).toMatch(/<div class="brief-body">.*<li><strong>/);
    const files = links(done.html!);
    expect(files.map((f) => f.name).sort()).toEqual(['sales-brief.md', 'sales-brief.pdf']);
    const md = await fetch(new URL(files.find((f) => f.name === 'sales-brief.md')!.href, handoff.url));
    expect(md.status).toBe(200);
    expect(await md.text()).toMatch(/^# .+/);

    const after = await client.schedules();
    expect(after.body.html).toMatch(/last: posted/);
  }, 330_000);

  it('pauses, resumes, changes the time of and deletes the schedule', async () => {
    expect(scheduleId).not.toBe('');
    const act = (op: string, extra: Record<string, unknown> = {}) =>
      client.action({ action: 'schedule', op, scheduleId, channel: 'general', ...extra });
    const item = async () => (await client.schedules()).body.schedules?.items.find((s) => s.id === scheduleId);

    const paused = await act('pause');
    expect(paused.status, paused.body.error).toBe(200);
    expect(paused.body.message).toMatch(/^Paused/);
    expect((await item())?.status).toBe('paused');
    expect((await client.schedules()).body.html).toContain(`data-schedule-op="resume" data-schedule="${scheduleId}"`);
    expect((await act('pause')).body.message).toMatch(/already paused/);

    const resumed = await act('resume');
    expect(resumed.status, resumed.body.error).toBe(200);
    expect(resumed.body.message).toMatch(/^Resumed/);
    expect((await item())?.status).toBe('active');

    const edited = await act('edit', { when: 'every Monday at 8:00' });
    expect(edited.status, edited.body.error).toBe(200);
    expect(edited.body.message).toMatch(/now every Monday at 08:00 \(Europe\/Berlin\)/);
    expect((await item())?.words).toMatch(/Monday at 08:00/);

    // Anyone may approve here (no approvers configured), but only the owner changes the time.
    const stranger = await act('edit', { when: 'every Tuesday at 8:00', author: 'Mallory' });
    expect(stranger.status).toBe(403);
    expect(stranger.body.error).toMatch(/only the schedule's owner \(Ana\) may change its time/);

    const deleted = await act('delete');
    expect(deleted.status, deleted.body.error).toBe(200);
    expect(deleted.body.message).toMatch(/^Deleted/);
    expect(await item()).toBeUndefined();
    const again = await act('run_now');
    expect(again.status).toBe(404);
  }, 60_000);

  it('refuses a rule it cannot read (with examples) and an unknown time zone, leaving no message', async () => {
    const before = (await client.messages()).length;

    const unreadable = await client.post('@handoff every blue moon: a sales brief from the attached CSV', csv);
    expect(unreadable.status).toBe(400);
    expect(unreadable.body.error).toMatch(/could not read "every blue moon" as a schedule/);
    expect(unreadable.body.error).toMatch(/Try, for example: "every weekday at 8:30"/);

    const zone = await client.post(
      '@handoff every weekday at 9:00 Mars/Olympus: a sales brief from the attached CSV',
      csv,
    );
    expect(zone.status).toBe(400);
    expect(zone.body.error).toMatch(/"Mars\/Olympus" is not a time zone I know/);

    // The browser's zone is a plain, short string.
    const long = await client.post(scheduleMessage, csv, undefined, { tz: 'x'.repeat(101) });
    expect(long.status).toBe(400);
    expect(long.body.error).toMatch(/tz must be a time zone name/);

    const badAction = await client.action({ action: 'schedule', op: 'explode', scheduleId: 's_x', channel: 'general' });
    expect(badAction.status).toBe(400);

    expect((await client.messages()).length).toBe(before);
  });

  it('guards the schedule routes like every other console route', async () => {
    const body = JSON.stringify({
      action: 'schedule',
      op: 'pause',
      scheduleId: 's_x',
      channel: 'general',
      author: 'Ana',
    });
    const crossSite = await fetch(`${handoff.url}/api/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body,
    });
    expect(crossSite.status).toBe(403);
    const noOrigin = await fetch(`${handoff.url}/api/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(noOrigin.status).toBe(403);
    const task = await fetch(`${handoff.url}/api/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: JSON.stringify({ action: 'schedule_task', taskId: 't_x', when: 'every day at 7:00', author: 'Ana' }),
    });
    expect(task.status).toBe(403);
    expect((await client.schedules('Not A Channel')).status).toBe(400);
  });

  it('offers Schedule… on a finished result and proposes it in a new top-level thread', async () => {
    const posted = await client.post('@handoff a sales brief from the attached CSV', csv);
    expect(posted.status, posted.body.error).toBe(201);
    const thread = posted.body.message!.id;
    const plan = await client.waitForCard(thread, (h) => h.includes('card plan'));
    expect(plan.html).not.toContain('schedule-info');
    expect((await client.action({ action: 'approve', ...planButtons(plan.html!) })).status).toBe(200);
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    const taskId = /data-action="schedule-task" data-task="([^"]+)"/.exec(result.html!)?.[1];
    expect(taskId, result.html).toBeDefined();

    const unreadable = await client.action({ action: 'schedule_task', taskId, when: 'now and then' });
    expect(unreadable.status).toBe(400);
    expect(unreadable.body.error).toMatch(/Try, for example/);

    const proposed = await client.action({
      action: 'schedule_task',
      taskId,
      when: 'every day at 7:00',
      tz: 'America/New_York',
    });
    expect(proposed.status, proposed.body.error).toBe(200);
    const root = (proposed.body as { threadId?: string }).threadId!;
    const top = await client.waitForMessage((m) => m.id === root, 10_000);
    expect(top.threadId).toBe(top.id);
    expect(top.author.bot).toBe(true);
    expect(top.html).toContain('Ana asked to run this again, every day at 7:00');
    const card = await client.waitForCard(root, (h) => h.includes('card plan'));
    expect(card.html).toContain('Schedule: every day at 07:00');
    expect(card.html).toContain('America/New_York');
  }, 330_000);
});
