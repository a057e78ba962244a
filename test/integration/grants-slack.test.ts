/**
 * Standing grants on Slack: the real Bolt app over HTTP against the fake Slack Web API, the
 * fake Messages API through the real SDK, a real MCP connector and the real sandbox.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConnectors } from '../../src/config/index.ts';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { type FakeMessage, FakeSlack, SlackSender } from '../fakes/slack-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const botToken = 'xoxb-4242-grants-test-token';
const signingSecret = 'slack-signing-secret-for-grants';
const ana = { id: 'UANA', name: 'Ana' }; // requester
const ben = { id: 'UBEN', name: 'Ben' }; // the channel's approver
const dan = { id: 'UDAN', name: 'Dan' }; // not an approver

type Block = {
  type: string;
  elements?: Array<{ action_id?: string; value?: string }>;
  accessory?: { action_id?: string; value?: string };
};
const buttons = (blocks: unknown[]) =>
  (blocks as Block[])
    .flatMap((b) => [...(b.type === 'actions' ? (b.elements ?? []) : []), ...(b.accessory ? [b.accessory] : [])])
    .map((e) => ({ action_id: e.action_id ?? '', value: e.value ?? '' }));
const use = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input }],
});

describeDocker('standing grants on Slack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-grants-slack-'));
  let fake: FakeSlack;
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let slack: SlackSender;
  let seq = 0;
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(700_000 + ++seq)}`;
  const ephemeralsFor = (user: string) => fake.callsOf('chat.postEphemeral').filter((c) => c.args.user === user);

  beforeAll(async () => {
    fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' }, UBEN: { name: 'Ben' }, UDAN: { name: 'Dan' } } });
    await fake.start();
    model = await startFakeAnthropic();
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'channels:',
        '  "slack:C5":',
        '    approvers: { users: [UBEN] }',
        '    connectors: [records]',
        '    standingGrants: { allow: true, maxDays: 2 }',
        '',
      ].join('\n'),
    );
    handoff = await startDevHandoff({
      env: {
        ANTHROPIC_API_KEY: 'sk-ant-test',
        ANTHROPIC_BASE_URL: model.url,
        HANDOFF_POLICY: policy,
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: fake.apiUrl,
      },
      connectors: parseConnectors(
        {
          records: {
            title: 'Records',
            command: process.execPath,
            args: [join(import.meta.dirname, '../fakes/mcp-stdio-server.mjs')],
            env: { RECORDS_LOG: join(dir, 'calls.log') },
            timeout: '5s',
          },
        },
        'handoff.yaml',
      ),
    });
    slack = new SlackSender(handoff.url, signingSecret);
  }, 60_000);
  afterAll(async () => {
    await handoff?.close();
    await model?.close();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Ana asks in C5; Ben approves the plan; returns the thread. */
  async function run(n: number): Promise<string> {
    model.enqueue(
      {
        content: [
          {
            type: 'tool_use',
            name: 'submit_plan',
            input: {
              summary: 'File a follow-up record and write a note.',
              steps: [
                { title: 'File the record', actions: ['connector_write'] },
                { title: 'Write the note', actions: ['create_files'] },
              ],
              deliverables: [{ name: 'note.md', type: 'md' }],
              connectorTools: ['records__create_record'],
            },
          },
        ],
      },
      use('records__create_record', { title: `Follow-up ${n}`, step: 1 }),
      use('write_file', { path: '/workspace/out/note.md', content: `note ${n}\n`, step: 2 }),
      use('deliver_artifact', { path: '/workspace/out/note.md', step: 2 }),
      { content: [{ type: 'text', text: `Filed follow-up ${n}.` }] },
    );
    const thread = newTs();
    const res = await slack.event({
      type: 'app_mention',
      user: ana.id,
      text: `<@UBOT> file follow-up ${n}`,
      ts: thread,
      channel: 'C5',
      event_ts: thread,
    });
    expect(res.status).toBe(200);
    const plan = await fake.waitFor(
      'plan card',
      () => fake.thread('C5', thread).find((m) => buttons(m.blocks).some((b) => b.action_id === 'handoff_approve')),
      120_000,
    );
    const approve = buttons(plan.blocks).find((b) => b.action_id === 'handoff_approve')!;
    expect((await slack.click(ben, 'C5', { ts: plan.ts, thread_ts: thread }, approve)).status).toBe(200);
    return thread;
  }

  const finished = (thread: string, n: number) =>
    fake.waitFor(
      `result ${n}`,
      () => fake.thread('C5', thread).find((m) => JSON.stringify(m.blocks).includes(`Filed follow-up ${n}`)),
      120_000,
    );
  const approvalCard = (thread: string): Promise<FakeMessage> =>
    fake.waitFor(
      'approval card',
      () =>
        fake.thread('C5', thread).find((m) => buttons(m.blocks).some((b) => b.action_id === 'handoff_action_approve')),
      120_000,
    );

  it('"Always allow" by an approver skips the next run’s card; /handoff grants lists it and Revoke restores the card', async () => {
    const one = await run(1);
    const card = await approvalCard(one);
    const ids = buttons(card.blocks).map((b) => b.action_id);
    expect(ids).toEqual([
      'handoff_action_approve',
      'handoff_action_deny',
      'handoff_action_grant_run',
      'handoff_action_grant_channel',
    ]);
    const always = buttons(card.blocks).find((b) => b.action_id === 'handoff_action_grant_channel')!;
    // Dan is no approver: refused privately, nothing granted.
    await slack.click(dan, 'C5', { ts: card.ts, thread_ts: one }, always);
    await fake.waitFor('refusal for Dan', () =>
      ephemeralsFor(dan.id).find((c) => String(c.args.text).includes('not an approver here')),
    );
    await slack.click(ben, 'C5', { ts: card.ts, thread_ts: one }, always);
    await fake.waitFor('card shows the grant', () => {
      const m = fake.messages.get(`C5:${card.ts}`)!;
      return JSON.stringify(m.blocks).includes('Approved and always allowed in this channel by Ben') ? m : undefined;
    });
    await finished(one, 1);

    // The next run in the channel: no approval card.
    const two = await run(2);
    await finished(two, 2);
    expect(
      fake.thread('C5', two).some((m) => buttons(m.blocks).some((b) => b.action_id === 'handoff_action_approve')),
    ).toBe(false);

    // Dan may not list them; Ben sees the grant with Revoke.
    await slack.command('/handoff', 'grants', dan, 'C5');
    await fake.waitFor('list refused for Dan', () =>
      ephemeralsFor(dan.id).find((c) => String(c.args.text).includes('approvers may list')),
    );
    await slack.command('/handoff', 'grants', ben, 'C5');
    const list = await fake.waitFor('grants list for Ben', () =>
      ephemeralsFor(ben.id).find((c) =>
        JSON.stringify(c.args.blocks ?? '').includes('connector:records__create_record'),
      ),
    );
    const revoke = buttons(list.args.blocks as unknown[]).find((b) => b.action_id.startsWith('handoff_grant_revoke_'))!;
    expect(revoke.value).toMatch(/^g_/);
    await slack.click(ben, 'C5', { ts: newTs() }, revoke, { ephemeral: true });
    await fake.waitFor('revoked', () => ephemeralsFor(ben.id).find((c) => String(c.args.text).startsWith('Revoked:')));

    // Revoked: the third run asks again.
    const three = await run(3);
    const back = await approvalCard(three);
    const approve = buttons(back.blocks).find((b) => b.action_id === 'handoff_action_approve')!;
    await slack.click(ben, 'C5', { ts: back.ts, thread_ts: three }, approve);
    await finished(three, 3);

    const redis = new Redis(handoff.redisUrl);
    const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r));
    redis.disconnect();
    expect(audit.filter((r) => r.type === 'grant.created').map((r) => [r.actor, r.data.scope])).toEqual([
      ['UBEN', 'channel'],
    ]);
    expect(audit.filter((r) => r.type === 'grant.used')).toHaveLength(1);
    expect(audit.filter((r) => r.type === 'grant.revoked').map((r) => r.actor)).toEqual(['UBEN']);
  }, 480_000);
});
