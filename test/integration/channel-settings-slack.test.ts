import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeAnthropicServer, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { blockKitProblems, FakeSlack, type SlackCall, SlackSender } from '../fakes/slack-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const botToken = 'xoxb-4242-channel-settings-token';
const signingSecret = 'slack-signing-secret-for-channel-settings';
const apiKey = 'sk-ant-channel-settings-test';

const ana = { id: 'UANA', name: 'Ana' };
const ben = { id: 'UBEN', name: 'Ben' }; // the approver
const dan = { id: 'UDAN', name: 'Dan' };
const channel = 'C7';

const policyYaml = `version: 1
channels:
  "slack:*":
    approvers:
      users: [UBEN]
`;

type Button = { action_id: string; value: string };
function buttonsOf(blocks: unknown): Button[] {
  const out: Button[] = [];
  for (const b of (blocks ?? []) as Array<{ elements?: Button[]; accessory?: Button & { type: string } }>) {
    for (const e of b.elements ?? []) if (e.action_id) out.push({ action_id: e.action_id, value: e.value });
    if (b.accessory?.action_id) out.push({ action_id: b.accessory.action_id, value: b.accessory.value });
  }
  return out;
}

describeDocker('channel instructions and memory in Slack: real Bolt app, fake Slack Web API', () => {
  let fake: FakeSlack;
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let slack: SlackSender;
  let redis: Redis;
  let policyDir: string;
  let tsSeq = 0;
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(700_000 + ++tsSeq)}`;

  const ephemerals = (user: string, since: number): SlackCall[] =>
    fake
      .callsOf('chat.postEphemeral')
      .filter((c) => c.args.user === user && c.args.channel === channel && c.at >= since && !c.error);
  const told = (user: { id: string }, words: string, since: number) =>
    fake
      .waitFor(
        `an ephemeral "${words}" for ${user.id}`,
        () =>
          ephemerals(user.id, since).find((c) =>
            `${c.args.text} ${JSON.stringify(c.args.blocks ?? '')}`.includes(words),
          ),
        20_000,
      )
      .catch((err: Error) => {
        throw new Error(
          `${err.message.split(';')[0]}; told: ${JSON.stringify(ephemerals(user.id, 0).map((c) => c.args.text))}`,
        );
      });

  async function command(user: { id: string; name: string }, text: string, expect: string) {
    const since = Date.now();
    const res = await slack.command('/handoff', text, user, channel);
    if (res.status !== 200) throw new Error(`/handoff answered ${res.status}`);
    return told(user, expect, since);
  }

  async function mention(user: { id: string }, text: string) {
    const ts = newTs();
    const res = await slack.event({
      type: 'app_mention',
      user: user.id,
      text: `<@UBOT> ${text}`,
      ts,
      channel,
      event_ts: ts,
    });
    expect(res.status).toBe(200);
    return ts;
  }

  beforeAll(async () => {
    model = await startFakeAnthropic({ apiKey });
    model.setHandler(() => ({
      content: [
        {
          type: 'tool_use',
          name: 'submit_plan',
          input: {
            summary: 'Write a note.',
            steps: [{ title: 'Write', actions: ['create_files'] }],
            deliverables: [{ name: 'note.md', type: 'md' }],
          },
        },
      ],
    }));
    fake = new FakeSlack({
      botToken,
      users: { UANA: { name: 'Ana' }, UBEN: { name: 'Ben' }, UDAN: { name: 'Dan' } },
    });
    await fake.start();
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-slack-chset-'));
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

  it('/handoff instructions and memory, "remember that", Forget and Accept, and the planner is told', async () => {
    // A non-approver is refused, naming the approver.
    const refused = await command(dan, 'instructions Answer in Klingon.', "Only this channel's approvers");
    expect(String(refused.args.text)).toContain('<@UBEN>');
    await command(ben, 'instructions Our fiscal year starts in April.', 'Instructions set for this channel');

    // "remember that …" from the approver: stored and acknowledged in the thread; no task.
    const tasks = (await redis.keys('hf:task:*')).length;
    const thread = await mention(ben, 'remember that the EMEA target is 2.1 M');
    await fake.waitFor('the acknowledgement', () =>
      fake.thread(channel, thread).find((m) => m.text.includes('Remembered for this channel')),
    );
    expect((await redis.keys('hf:task:*')).length).toBe(tasks);

    // From Dan it is a proposal with Accept / Dismiss; Dan's own click is refused, Ben's accepts.
    const proposedIn = await mention(dan, 'remember that the APAC target is 1.5 M');
    const proposal = await fake.waitFor('the proposal', () =>
      fake.thread(channel, proposedIn).find((m) => m.text.includes('waits for one of them')),
    );
    expect(blockKitProblems(proposal.blocks)).toEqual([]);
    const accept = buttonsOf(proposal.blocks).find((b) => b.action_id.startsWith('handoff_memory_accept_'))!;
    let since = Date.now();
    await slack.click(dan, channel, { ts: proposal.ts, thread_ts: proposedIn }, accept);
    await told(dan, "Only this channel's approvers can add to its memory", since);
    since = Date.now();
    await slack.click(ben, channel, { ts: proposal.ts, thread_ts: proposedIn }, accept);
    await told(ben, 'Remembered for this channel', since);

    // `/handoff memory` lists both, with Forget for the approver only.
    const danList = await command(dan, 'memory', 'the APAC target is 1.5 M');
    expect(buttonsOf(danList.args.blocks).filter((b) => b.action_id.startsWith('handoff_memory_forget_'))).toEqual([]);
    const list = await command(ben, 'memory', 'the EMEA target is 2.1 M');
    expect(blockKitProblems(list.args.blocks)).toEqual([]);
    const forgets = buttonsOf(list.args.blocks).filter((b) => b.action_id.startsWith('handoff_memory_forget_'));
    expect(forgets).toHaveLength(2);

    // Dan cannot forget (even with the button's value); Ben can.
    since = Date.now();
    await slack.click(dan, channel, { ts: newTs() }, forgets[1]!, { ephemeral: true });
    await told(dan, "Only this channel's approvers can forget", since);
    since = Date.now();
    await slack.click(ben, channel, { ts: newTs() }, forgets[1]!, { ephemeral: true });
    await told(ben, 'Forgotten', since);

    // A request's planner is told the instructions and the fact that is left, not the forgotten one.
    const before = model.messageRequests.length;
    const asked = await mention(ana, 'write a note for the team');
    await fake.waitFor(
      'the plan card',
      () => fake.thread(channel, asked).find((m) => buttonsOf(m.blocks).some((b) => b.action_id === 'handoff_approve')),
      60_000,
    );
    const planning = model.messageRequests.slice(before)[0]!;
    const first = JSON.stringify((planning.body.messages as unknown[])[0]);
    expect(first).toContain('Our fiscal year starts in April.');
    expect(first).toContain('the EMEA target is 2.1 M');
    expect(first).not.toContain('APAC');
  });
});
