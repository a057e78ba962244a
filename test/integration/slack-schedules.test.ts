import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { blockKitProblems, type FakeMessage, FakeSlack, type SlackCall, SlackSender } from '../fakes/slack-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const botToken = 'xoxb-4242-schedules-test-token';
const signingSecret = 'slack-signing-secret-for-schedules';
const apiKey = 'sk-ant-schedules-test';
const salesCsv = await readFile(new URL('../../examples/sales.csv', import.meta.url));

const ana = { id: 'UANA', name: 'Ana' }; // owner of the schedules
const ben = { id: 'UBEN', name: 'Ben' }; // approver in every channel
const dan = { id: 'UDAN', name: 'Dan' }; // neither

// Ben approves everywhere; in C4 only approvers may create schedules.
const policyYaml = `version: 1
channels:
  "slack:*":
    approvers:
      users: [UBEN]
  "slack:C4":
    schedules:
      create: approvers
`;

const briefMd = `# Weekly sales brief

- **Total**: $12,400 from 18 rows
- Top region: *North* (41%)
- Details: [the dashboard](https://example.com/d?a=1&b=2)
`;

/** The standing plan the model proposes for every request here: one markdown brief. */
const plan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Write the weekly sales brief as markdown.',
        steps: [{ title: 'Write the brief', actions: ['create_files'] }],
        deliverables: [{ name: 'sales-brief.md', type: 'md' }],
      },
    },
  ],
};

type Block = {
  type: string;
  elements?: Array<{ action_id?: string; value?: string }>;
  text?: { text: string };
};
type Button = { action_id: string; value: string };

function buttonsOf(blocks: unknown): Button[] {
  return ((blocks ?? []) as Block[])
    .filter((b) => b.type === 'actions')
    .flatMap((b) => b.elements ?? [])
    .map((e) => ({ action_id: e.action_id ?? '', value: e.value ?? '' }));
}

/** A schedule's button in a list: by action and schedule id. */
function scheduleButton(blocks: unknown, action: string, scheduleId: string): Button {
  const found = buttonsOf(blocks).find(
    (b) =>
      b.action_id.startsWith(`handoff_schedule_${action}_`) && (JSON.parse(b.value) as { s: string }).s === scheduleId,
  );
  if (!found) throw new Error(`no ${action} button for ${scheduleId} in ${JSON.stringify(blocks)}`);
  return found;
}

describeDocker('scheduled briefs in Slack: real Bolt app, fake Slack Web API, fake Anthropic API', () => {
  let fake: FakeSlack;
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let slack: SlackSender;
  let redis: Redis;
  let policyDir: string;
  /** When set, every run's model ends at once without delivering anything. */
  let failRuns = false;
  let tsSeq = 0;
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(800_000 + ++tsSeq)}`;

  const ephemerals = (user: string, channel: string, since = 0): SlackCall[] =>
    fake
      .callsOf('chat.postEphemeral')
      .filter((c) => c.args.user === user && c.args.channel === channel && c.at >= since && !c.error);
  const waitEphemeral = (user: string, channel: string, words: string, since: number) =>
    fake
      .waitFor(
        `an ephemeral "${words}" for ${user}`,
        () =>
          ephemerals(user, channel, since).find((c) =>
            `${c.args.text} ${JSON.stringify(c.args.blocks ?? '')}`.includes(words),
          ),
        20_000,
      )
      .catch((err: Error) => {
        const seen = ephemerals(user, channel, since).map((c) => String(c.args.text));
        throw new Error(`${err.message.split(';')[0]}; ${user} was told: ${JSON.stringify(seen)}`);
      });

  /** `/handoff schedules` in a channel: the ephemeral list's blocks. */
  async function listSchedules(user: { id: string; name: string }, channel: string): Promise<unknown[]> {
    const since = Date.now();
    const res = await slack.command('/handoff', 'schedules', user, channel);
    expect(res.status).toBe(200);
    const list = await waitEphemeral(user.id, channel, 'Schedules in this channel', since);
    expect(blockKitProblems(list.args.blocks)).toEqual([]);
    return list.args.blocks as unknown[];
  }

  /** Clicks a button of the ephemeral list and returns the answer shown to the person. */
  async function clickInList(user: { id: string; name: string }, channel: string, button: Button, words: string) {
    const since = Date.now();
    const res = await slack.click(user, channel, { ts: newTs() }, button, { ephemeral: true });
    expect(res.status).toBe(200);
    return waitEphemeral(user.id, channel, words, since);
  }

  /** Clicks Edit in the ephemeral list and returns the modal that opened. */
  async function openEdit(user: { id: string; name: string }, channel: string, button: Button) {
    const opens = fake.callsOf('views.open').length;
    await slack.click(user, channel, { ts: newTs() }, button, { ephemeral: true });
    const opened = await fake.waitFor('the Edit modal', () =>
      fake
        .callsOf('views.open')
        .slice(opens)
        .find((c) => !c.error),
    );
    return opened.args.view as { callback_id: string; private_metadata: string; blocks: unknown[] };
  }

  async function planCard(channel: string, thread: string): Promise<FakeMessage> {
    return fake.waitFor('the plan card', () =>
      fake
        .thread(channel, thread)
        .find((m) => m.text.includes('Plan v1') && buttonsOf(m.blocks).some((b) => b.action_id === 'handoff_approve')),
    );
  }

  /** Ben approves a standing plan; returns the schedule id the thread announces. */
  async function approve(channel: string, thread: string, card: FakeMessage): Promise<string> {
    const button = buttonsOf(card.blocks).find((b) => b.action_id === 'handoff_approve')!;
    await slack.click(ben, channel, { ts: card.ts, thread_ts: thread }, button);
    const active = await fake.waitFor('the schedule is active', () =>
      fake.thread(channel, thread).find((m) => /Schedule s_\S+ is active/.test(m.text)),
    );
    return /Schedule (s_\S+) is active/.exec(active.text)![1]!;
  }

  /** Mentions the bot and returns the thread. */
  async function mention(
    user: { id: string },
    channel: string,
    text: string,
    files: Array<{ id: string; name: string; size: number }> = [],
  ) {
    const ts = newTs();
    const res = await slack.event({
      type: 'app_mention',
      user: user.id,
      text: `<@UBOT> ${text}`,
      ts,
      channel,
      event_ts: ts,
      ...(files.length
        ? {
            files: files.map((f) => ({
              id: f.id,
              name: f.name,
              size: f.size,
              mimetype: 'text/csv',
              url_private_download: fake.fileUrl(f.id, f.name),
            })),
          }
        : {}),
    });
    expect(res.status).toBe(200);
    return ts;
  }

  /** A schedule proposed by `/handoff schedule …` and approved by Ben: its id and its proposal's thread. */
  async function scheduleByCommand(channel: string, text: string): Promise<{ id: string; thread: string }> {
    await slack.command('/handoff', text, ana, channel);
    const root = await fake.waitFor('the proposal message', () =>
      fake.topLevel(channel).find((m) => m.text.includes('Ana proposes a schedule')),
    );
    const card = await planCard(channel, root.ts);
    return { id: await approve(channel, root.ts, card), thread: root.ts };
  }

  beforeAll(async () => {
    model = await startFakeAnthropic({ apiKey });
    // Replies follow the conversation, so a retried or resumed request gets the same answer.
    model.setHandler((body) => {
      const tools = (body.tools as Array<{ name: string }> | undefined) ?? [];
      if (tools.some((t) => t.name === 'submit_plan')) return plan;
      const blocks = ((body.messages as Array<{ content: unknown }> | undefined) ?? []).flatMap((m) =>
        Array.isArray(m.content) ? (m.content as Array<{ type: string; name?: string }>) : [],
      );
      const lastUse = blocks.filter((b) => b.type === 'tool_use').at(-1)?.name;
      if (lastUse === undefined) {
        if (failRuns) return { content: [{ type: 'text', text: 'The sales export is empty today.' }] };
        return {
          content: [
            {
              type: 'tool_use',
              name: 'write_file',
              input: { path: '/workspace/out/sales-brief.md', content: briefMd, step: 1 },
            },
          ],
        };
      }
      if (lastUse === 'write_file')
        return {
          content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/sales-brief.md' } }],
        };
      return { content: [{ type: 'text', text: 'Wrote the weekly sales brief.' }] };
    });
    fake = new FakeSlack({
      botToken,
      users: {
        UANA: { name: 'Ana', tz: 'America/New_York' },
        UBEN: { name: 'Ben', tz: 'Europe/London' },
        UDAN: { name: 'Dan', tz: 'Asia/Tokyo' },
      },
      files: { F1: { name: 'sales.csv', bytes: salesCsv } },
    });
    await fake.start();
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-slack-schedules-'));
    await writeFile(join(policyDir, 'policy.yaml'), policyYaml);
    handoff = await startDevHandoff({
      env: {
        HANDOFF_POLICY: join(policyDir, 'policy.yaml'),
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: fake.apiUrl,
        ANTHROPIC_API_KEY: apiKey,
        ANTHROPIC_BASE_URL: model.url,
      },
    });
    slack = new SlackSender(handoff.url, signingSecret, fake.responseUrl(`r${randomBytes(3).toString('hex')}`));
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await fake?.close();
    await model?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it('mention → plan card with the schedule → Approve → Run now posts a new top-level brief, edited to the brief', async () => {
    const thread = await mention(
      ana,
      'C1',
      'every Monday 9:00 Europe/Berlin: post the weekly sales brief from the CSV',
      [{ id: 'F1', name: 'sales.csv', size: salesCsv.length }],
    );
    await fake.waitFor('the Drafting… answer', () =>
      fake.thread('C1', thread).find((m) => m.text.startsWith('Drafting the standing plan for a schedule')),
    );
    const card = await planCard('C1', thread);
    expect(blockKitProblems(card.blocks)).toEqual([]);
    const text = JSON.stringify(card.blocks);
    // The schedule's section sits above the plan.
    expect(text.indexOf('Scheduled brief: every Monday at 09:00')).toBeGreaterThan(-1);
    expect(text.indexOf('Scheduled brief')).toBeLessThan(text.indexOf('Plan v1'));
    expect(text).toContain('Europe/Berlin (given in the request)');
    const next = /Next runs:\* ([^"\\]+)/.exec(text)![1]!.split(' · ');
    expect(next).toHaveLength(3);
    for (const run of next) expect(run).toMatch(/^Mon \d+ \w+ \d{4}, 09:00 CES?T$/);
    expect(text).toContain('*Owner:* Ana · *Posts in:* <#C1>');
    expect(text).toContain('Files it may deliver: md');
    expect(text).toContain('per run');

    const scheduleId = await approve('C1', thread, card);
    await fake.waitFor('the card shows the approval', () =>
      JSON.stringify(fake.messages.get(`C1:${card.ts}`)!.blocks).includes('Approved by Ben') ? true : undefined,
    );

    // Run now from the channel's list.
    const list = await listSchedules(ana, 'C1');
    expect(JSON.stringify(list)).toContain('post the weekly sales brief from the CSV');
    const topBefore = fake.topLevel('C1').length;
    const answer = await clickInList(ana, 'C1', scheduleButton(list, 'run_now', scheduleId), 'Running now');
    expect(answer.args.text).toContain('the brief is posted in the channel');

    // A new top-level message (no thread_ts), posted as "preparing" and edited into the brief.
    const brief = await fake.waitFor('the brief message', () => fake.topLevel('C1').slice(topBefore)[0]);
    const post = fake
      .callsOf('chat.postMessage')
      .find((c) => c.args.channel === 'C1' && JSON.stringify(c.args.blocks ?? '').includes('Preparing this brief'))!;
    expect(post.args.thread_ts).toBeUndefined();
    const done = await fake.waitFor(
      'the brief edited in place',
      () => (fake.messages.get(`C1:${brief.ts}`)!.text.startsWith('Weekly sales brief —') ? brief : undefined),
      90_000,
    );
    expect(done.edits).toBeGreaterThanOrEqual(1);
    expect(blockKitProblems(done.blocks)).toEqual([]);
    const shown = JSON.stringify(done.blocks);
    // The markdown became mrkdwn: bold, bullets, links.
    expect(shown).toContain('• *Total*: $12,400 from 18 rows');
    expect(shown).toContain('Top region: _North_ (41%)');
    expect(shown).toContain('<https://example.com/d?a=1&amp;b=2|the dashboard>');
    expect(shown).toContain('run by hand (Run now)');
    const link = /<(https?:[^|>]+)\|sales-brief\.md>/.exec(shown)?.[1];
    expect(link).toBeDefined();
    const file = await fetch(link!.replace(/&amp;/g, '&'));
    expect(file.status).toBe(200);
    expect(await file.text()).toBe(briefMd);
    // Questions about it go in its thread: the tick's task is linked to the brief's ts.
    expect(await redis.exists(`hf:thread:slack:C1:${brief.ts}`)).toBe(1);
  }, 150_000);

  it('owner pauses, resumes (from the list and App Home) and deletes; someone else is refused', async () => {
    const { id } = await scheduleByCommand(
      'C2',
      'schedule "every Tuesday at 10:00 Europe/Berlin" post the tuesday brief',
    );
    let list = await listSchedules(ana, 'C2');

    // Dan is neither its owner nor an approver.
    const refused = await clickInList(dan, 'C2', scheduleButton(list, 'pause', id), "the schedule's owner");
    expect(refused.args.text).toBe("Only the schedule's owner (Ana) or an approver of this channel may change it.");

    const responsesBefore = fake.responses.length;
    await clickInList(ana, 'C2', scheduleButton(list, 'pause', id), 'Paused: "post the tuesday brief"');
    // The list she clicked in is replaced by the current one.
    const refreshed = await fake.waitFor('the refreshed list', () =>
      fake.responses.slice(responsesBefore).find((r) => r.body.replace_original === true),
    );
    expect(JSON.stringify(refreshed.body.blocks)).toContain('Paused: paused by Ana');
    list = refreshed.body.blocks as unknown[];
    const resumed = await clickInList(ana, 'C2', scheduleButton(list, 'resume', id), 'Resumed');
    expect(resumed.args.text).toMatch(/^Resumed: next run Tue \d+ \w+ \d{4}, 10:00 CES?T\.$/);

    // App Home lists her schedules with the same buttons; a click there answers on Home.
    await slack.event({ type: 'app_home_opened', user: ana.id, channel: 'DANA', tab: 'home', event_ts: newTs() });
    const home = await fake.waitFor('App Home', () =>
      fake
        .callsOf('views.publish')
        .filter((c) => c.args.user_id === ana.id && !c.error)
        .find((c) => JSON.stringify(c.args.view).includes('post the tuesday brief')),
    );
    const homeBlocks = (home.args.view as { blocks: unknown[] }).blocks;
    expect(JSON.stringify(homeBlocks)).toContain('Your schedules');
    expect(JSON.stringify(homeBlocks)).toContain('in <#C2>');
    const publishes = fake.callsOf('views.publish').length;
    await slack.homeClick(ana, scheduleButton(homeBlocks, 'pause', id));
    const noticed = await fake.waitFor('App Home with the answer', () =>
      fake
        .callsOf('views.publish')
        .slice(publishes)
        .find((c) => JSON.stringify(c.args.view).includes('Paused: \\"post the tuesday brief\\"')),
    );
    expect(JSON.stringify(noticed.args.view)).toContain('handoff_schedule_resume_');

    // Edit: the owner gets the rule she typed and the request, and changes the time.
    list = await listSchedules(ana, 'C2');
    const modal = await openEdit(ana, 'C2', scheduleButton(list, 'edit', id));
    expect(JSON.stringify(modal.blocks)).toContain('"initial_value":"every Tuesday at 10:00 Europe/Berlin"');
    expect(JSON.stringify(modal.blocks)).toContain('"initial_value":"post the tuesday brief"');
    let since = Date.now();
    await slack.submitView(ana, modal, { when: 'every Wednesday at 11:00', request: 'post the tuesday brief' });
    const changed = await waitEphemeral(ana.id, 'C2', 'Changed: now every Wednesday at 11:00', since);
    // The zone is kept when the new rule names none.
    expect(changed.args.text).toContain('(Europe/Berlin)');

    // A new request needs a new approval: proposed under a new top-level message, replacing this schedule.
    since = Date.now();
    await slack.submitView(ana, modal, { when: 'every Wednesday at 11:00', request: 'post the wednesday brief' });
    await waitEphemeral(ana.id, 'C2', 'The new request needs approval', since);
    const root = await fake.waitFor('the proposal of the new request', () =>
      fake.topLevel('C2').find((m) => m.text.includes(`Ana proposes a new request for schedule ${id}`)),
    );
    const card = JSON.stringify((await planCard('C2', root.ts)).blocks);
    expect(card).toContain(`Approving this replaces schedule \`${id}\``);

    // Dan may not edit either: he is told, and nothing is posted in the channel.
    const danModal = await openEdit(dan, 'C2', scheduleButton(list, 'edit', id));
    expect(JSON.stringify(danModal.blocks)).not.toContain('initial_value');
    const postsBefore = fake.callsOf('chat.postMessage').length;
    since = Date.now();
    await slack.submitView(dan, danModal, { when: '', request: 'post something else' });
    const noEdit = await waitEphemeral(dan.id, 'C2', "the schedule's owner", since);
    expect(noEdit.args.text).toBe("Only the schedule's owner (Ana) or an approver of this channel may change it.");
    expect(fake.callsOf('chat.postMessage').length).toBe(postsBefore);

    list = await listSchedules(ana, 'C2');
    await clickInList(ana, 'C2', scheduleButton(list, 'delete', id), 'Deleted');
    list = await listSchedules(ana, 'C2');
    expect(JSON.stringify(list)).not.toContain(id);
    expect(JSON.stringify(list)).toContain('No schedules here yet');
  }, 90_000);

  it('an unreadable, too frequent or refused rule is answered to the person alone, with examples', async () => {
    const topBefore = fake.topLevel('C3').length;
    let since = Date.now();
    await slack.command('/handoff', 'schedule "whenever it feels right" post the sales brief', ana, 'C3');
    const unreadable = await waitEphemeral(ana.id, 'C3', 'could not read', since);
    expect(unreadable.args.text).toMatch(
      /^I could not read "whenever it feels right" as a schedule: .*Try, for example: "every weekday at 8:30"/,
    );

    since = Date.now();
    const thread = await mention(ana, 'C3', 'every blue moon: post the sales brief');
    const byMention = await waitEphemeral(ana.id, 'C3', 'could not read', since);
    expect(byMention.args.thread_ts).toBe(thread);
    expect(byMention.args.text).toContain('Try, for example');

    since = Date.now();
    await slack.command('/handoff', 'schedule every 5 minutes: post the sales brief', ana, 'C3');
    const frequent = await waitEphemeral(ana.id, 'C3', 'at most one run every 15 min', since);
    expect(frequent.args.text).toContain('would run every 5 minutes');

    since = Date.now();
    const usage = await slack.command('/handoff', 'schedule', ana, 'C3');
    expect(usage.text).toContain('/handoff schedule \\"every weekday at 9:00\\"');

    // Only approvers create schedules in C4: the proposal's message is removed again.
    since = Date.now();
    await slack.command('/handoff', 'schedule "every Monday at 9:00" post the sales brief', dan, 'C4');
    const notAllowed = await waitEphemeral(dan.id, 'C4', 'Only approvers may create schedules', since);
    expect(notAllowed.args.text).toBe('Only approvers may create schedules in this channel; ask <@UBEN>.');
    await fake.waitFor('the proposal message deleted', () =>
      fake.callsOf('chat.delete').find((c) => c.args.channel === 'C4' && !c.error),
    );
    expect(fake.topLevel('C4')).toEqual([]);
    expect(fake.topLevel('C3').length).toBe(topBefore);
    expect(fake.calls.filter((c) => c.error === 'invalid_blocks')).toEqual([]);
  }, 60_000);

  it('a failed run edits its brief into a failure notice and DMs the owner; a channel refusing posts pauses it', async () => {
    // No zone in the rule: the requester's profile zone is used and said so.
    const { id, thread } = await scheduleByCommand('C5', 'schedule every weekday at 8:30: post the daily brief');
    const card = JSON.stringify(fake.thread('C5', thread).find((m) => m.text.includes('Plan v1'))!.blocks);
    expect(card).toContain('America/New_York (the requester');
    expect(card).toContain('every weekday (Mon–Fri) at 08:30');

    failRuns = true;
    try {
      const topBefore = fake.topLevel('C5').length;
      const dmsBefore = fake.dmsTo(ana.id).length;
      await clickInList(ana, 'C5', scheduleButton(await listSchedules(ana, 'C5'), 'run_now', id), 'Running now');
      const brief = await fake.waitFor('the brief message', () => fake.topLevel('C5').slice(topBefore)[0]);
      const failed = await fake.waitFor(
        'the failure notice',
        () => (fake.messages.get(`C5:${brief.ts}`)!.text.startsWith('Failed:') ? brief : undefined),
        90_000,
      );
      const shown = JSON.stringify(failed.blocks);
      expect(shown).toContain('This brief failed:* the run ended without delivering any file.');
      expect(shown).toContain('The sales export is empty today.');
      expect(shown).toContain('Edit the schedule, or Run now to try again');
      const dm = await fake.waitFor('the DM to the owner', () => fake.dmsTo(ana.id)[dmsBefore]);
      expect(dm.text).toMatch(
        /^Your scheduled brief "post the daily brief" of .+ failed: the run ended without delivering/,
      );
    } finally {
      failRuns = false;
    }

    // The bot was removed from the channel: the next brief cannot be posted.
    fake.refusePosts('C5', 'not_in_channel');
    // Run now is one tick per second (its id is the second): a second click within it is the same tick.
    await new Promise((r) => setTimeout(r, 1100));
    try {
      const dmsBefore = fake.dmsTo(ana.id).length;
      await clickInList(ana, 'C5', scheduleButton(await listSchedules(ana, 'C5'), 'run_now', id), 'Running now');
      const dm = await fake.waitFor('the DM about the pause', () => fake.dmsTo(ana.id)[dmsBefore]);
      expect(dm.text).toContain('Your schedule "post the daily brief" is paused: Handoff cannot post in C5');
      expect(dm.text).toContain('not_in_channel');
      const list = JSON.stringify(await listSchedules(ana, 'C5'));
      expect(list).toContain('Paused: Handoff cannot post in C5');
      expect(list).toContain('handoff_schedule_resume_0');
    } finally {
      fake.acceptPosts('C5');
    }

    // The bot is back; then the owner leaves the workspace (users.info says deleted).
    await clickInList(ana, 'C5', scheduleButton(await listSchedules(ana, 'C5'), 'resume', id), 'Resumed');
    fake.setUser('UANA', { deleted: true });
    try {
      await new Promise((r) => setTimeout(r, 1100));
      const topBefore = fake.topLevel('C5').length;
      await clickInList(ben, 'C5', scheduleButton(await listSchedules(ben, 'C5'), 'run_now', id), 'Running now');
      const notice = await fake.waitFor('the notice to the approvers', () =>
        fake
          .topLevel('C5')
          .slice(topBefore)
          .find((m) => m.text.includes('has left')),
      );
      expect(notice.text).toContain('its owner Ana has left');
      expect(notice.text).toContain('<@UBEN>');
      expect(JSON.stringify(await listSchedules(ben, 'C5'))).toContain('no longer in the workspace');
      // An approver who resumes it becomes its owner.
      await clickInList(
        ben,
        'C5',
        scheduleButton(await listSchedules(ben, 'C5'), 'resume', id),
        'with Ben as its owner',
      );
    } finally {
      fake.setUser('UANA', { deleted: false });
    }
  }, 180_000);

  it('"Schedule…" on a finished result proposes running the request again on a schedule', async () => {
    const thread = await mention(ana, 'C6', 'write the weekly sales brief');
    const card = await planCard('C6', thread);
    const approveButton = buttonsOf(card.blocks).find((b) => b.action_id === 'handoff_approve')!;
    await slack.click(ben, 'C6', { ts: card.ts, thread_ts: thread }, approveButton);
    const result = await fake.waitFor(
      'the result card',
      () => fake.thread('C6', thread).find((m) => m.text === 'Done'),
      90_000,
    );
    const schedule = buttonsOf(result.blocks).find((b) => b.action_id === 'handoff_schedule_result');
    expect(schedule).toBeDefined();

    const opens = fake.callsOf('views.open').length;
    await slack.click(ana, 'C6', { ts: result.ts, thread_ts: thread }, schedule!);
    const opened = await fake.waitFor('the "When?" modal', () =>
      fake
        .callsOf('views.open')
        .slice(opens)
        .find((c) => !c.error),
    );
    const modal = opened.args.view as { callback_id: string; private_metadata: string; blocks: unknown[] };
    expect(JSON.stringify(modal.blocks)).toContain('every weekday at 9:00');

    // An unreadable answer is refused to Ana alone, in the task's thread; nothing is posted.
    const topBefore = fake.topLevel('C6').length;
    let since = Date.now();
    await slack.submitView(ana, modal, { when: 'sometimes maybe' });
    const refused = await waitEphemeral(ana.id, 'C6', 'could not read', since);
    expect(refused.args.thread_ts).toBe(thread);
    expect(fake.topLevel('C6').length).toBe(topBefore);

    since = Date.now();
    await slack.submitView(ana, modal, { when: 'every Friday at 16:00' });
    const root = await fake.waitFor('the proposal message', () =>
      fake.topLevel('C6').find((m) => m.text.includes('Ana asked to run this again, every Friday at 16:00')),
    );
    const proposal = await planCard('C6', root.ts);
    const text = JSON.stringify(proposal.blocks);
    expect(text).toContain('Scheduled brief: every Friday at 16:00');
    // Ana's profile zone, since the rule names none.
    expect(text).toContain('America/New_York');
    expect(text).toContain('*Owner:* Ana');
  }, 120_000);
});
