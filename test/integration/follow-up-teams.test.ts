/**
 * A follow-up in a Microsoft Teams channel thread: after the delivery, a reply from someone
 * who may not follow up is refused, the requester's reply plans version 2 from the
 * delivered file, and the approved run makes v2 from v1. The model is scripted, the
 * sandbox is real.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  activityText,
  cardExecutes,
  startTeamsFakes,
  type TeamsActivity,
  type TeamsFakes,
  type TeamsMessage,
  type TeamsSender,
  teamsChannel,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { ScriptedModel, text, toolUse } from '../helpers/scripted-model.ts';

const ana = teamsUser('Ana'); // requester
const ben = teamsUser('Ben'); // the channel's approver
const dan = teamsUser('Dan'); // neither
const team = teamsTeam('Operations');
const general = teamsChannel(team, 'General');

const policyYaml = `version: 1
channels:
  "teams:${team.id}/${general.id}":
    approvers:
      users: [${ben.aadObjectId}]
`;

const textOf = (m: TeamsMessage) => activityText(m.activity);

const plan = (summary: string) => [
  toolUse('tu_plan', 'submit_plan', {
    summary,
    steps: [{ title: 'Write the notes', actions: ['run_commands', 'create_files'] }],
    deliverables: [{ name: 'notes.md', type: 'md' }],
  }),
];

/** v1: write notes.md; the follow-up: copy the delivered notes.md, add a line, show it. */
const script = new ScriptedModel([
  plan('Write the team notes.'),
  [toolUse('tu_v1', 'run_command', { command: "printf '# Notes\\n- ship it\\n' > /workspace/out/notes.md", step: 1 })],
  [toolUse('tu_d1', 'deliver_artifact', { path: '/workspace/out/notes.md' })],
  [text('Wrote notes.md.')],
  plan('Add a line for Bo to the delivered notes.'),
  [
    toolUse('tu_v2', 'run_command', {
      command:
        "cp /workspace/in/notes.md /workspace/out/notes.md && printf -- '- thank Bo\\n' >> /workspace/out/notes.md && cat /workspace/out/notes.md",
      step: 1,
    }),
  ],
  [toolUse('tu_d2', 'deliver_artifact', { path: '/workspace/out/notes.md' })],
  [text('Added the line for Bo.')],
]);

describeDocker('Teams: a follow-up in a channel thread after the delivery', () => {
  let fakes: TeamsFakes;
  let handoff: TestHandoff;
  let teams: TeamsSender;
  let redis: Redis;
  let policyDir: string;

  async function approveAsBen(post: TeamsActivity, card: TeamsMessage): Promise<void> {
    const refreshed = await teams.click(post, card, ben, 'refresh');
    const approve = cardExecutes(refreshed.card).find((e) => e.verb === 'plan.approve')?.data;
    expect(approve).toBeDefined();
    const ok = await teams.click(post, card, ben, 'plan.approve', approve);
    expect(ok.text).toContain('Approved: the run is queued.');
  }

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-teams-follow-up-'));
    await writeFile(join(policyDir, 'policy.yaml'), policyYaml);
    handoff = await startDevHandoff({
      provider: script,
      env: { HANDOFF_POLICY: join(policyDir, 'policy.yaml'), ...fakes.handoffEnv() },
    });
    teams = fakes.sender(handoff.url);
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await fakes?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it('refuses a stranger, plans v2 from the requester’s reply and delivers v2 made from v1', async () => {
    const post = teams.channelMention({ team, channel: general, from: ana, text: 'write the team notes' });
    expect((await teams.send(post)).status).toBe(200);
    const thread = `${general.id};messageid=${post.id}`;
    const planCard = (version: number) =>
      fakes.connector.waitForMessage(
        (m) => m.conversationId === thread && textOf(m).includes(`Plan v${version}`),
        120_000,
        `plan card v${version}`,
      );
    await approveAsBen(post, await planCard(1));
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Wrote notes.md.'),
      120_000,
      'the v1 result',
    );

    const say = async (who: ReturnType<typeof teamsUser>, words: string) => {
      const reply = teams.channelMention({ team, channel: general, from: who, text: words, replyToRoot: post.id });
      expect(reply.conversation.id).toBe(thread);
      expect((await teams.send(reply)).status).toBe(200);
    };
    await say(dan, 'add me too');
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Only Ana (who asked) or an approver can follow up'),
      30_000,
      'the refusal for Dan',
    );

    await say(ana, 'add a line to thank Bo');
    const v2 = await planCard(2);
    expect(textOf(v2)).toContain('Follow-up from Ana');
    expect(textOf(v2)).toContain('add a line to thank Bo');
    await approveAsBen(post, v2);
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Added the line for Bo.'),
      120_000,
      'the v2 result',
    );
    // The run read the delivered v1 from /workspace/in and wrote v2 from it.
    const shown = script.requests
      .flatMap((r) => r.messages)
      .flatMap((m) => (Array.isArray(m.content) ? (m.content as Array<{ type: string; tool_use_id?: string }>) : []))
      .find((b) => b.type === 'tool_result' && b.tool_use_id === 'tu_v2');
    expect(JSON.stringify(shown)).toContain('# Notes\\n- ship it\\n- thank Bo');
    const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r) as { type: string; actor?: string });
    expect(audit.filter((r) => r.type === 'task.follow_up').map((r) => r.actor)).toEqual([
      ana.aadObjectId.toLowerCase(),
    ]);
  }, 300_000);
});
