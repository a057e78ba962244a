/**
 * Channel instructions and memory on Microsoft Teams: the text commands in a channel, who may
 * use them, and the planner being told. The model is scripted; the sandbox is real.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  activityText,
  startTeamsFakes,
  type TeamsFakes,
  type TeamsSender,
  teamsChannel,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { ScriptedModel, toolUse } from '../helpers/scripted-model.ts';

const ana = teamsUser('Ana');
const ben = teamsUser('Ben'); // the channel's approver
const team = teamsTeam('Finance');
const general = teamsChannel(team, 'General');

const policyYaml = `version: 1
channels:
  "teams:${team.id}/${general.id}":
    approvers:
      users: [${ben.aadObjectId}]
`;

describeDocker('Teams: channel instructions and memory commands', () => {
  let fakes: TeamsFakes;
  let handoff: TestHandoff;
  let teams: TeamsSender;
  let redis: Redis;
  let policyDir: string;
  const model = new ScriptedModel([
    [
      toolUse('tu_plan', 'submit_plan', {
        summary: 'Write a note.',
        steps: [{ title: 'Write', actions: ['create_files'] }],
        deliverables: [{ name: 'note.md', type: 'md' }],
      }),
    ],
  ]);

  /** Posts in the channel and returns the bot's first answer in that new thread. */
  async function say(from: ReturnType<typeof teamsUser>, text: string): Promise<string> {
    const post = teams.channelMention({ team, channel: general, from, text });
    expect((await teams.send(post)).status).toBe(200);
    const thread = `${general.id};messageid=${post.id}`;
    const answer = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread,
      30_000,
      `an answer to "${text}"`,
    );
    return activityText(answer.activity);
  }

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-teams-chset-'));
    await writeFile(join(policyDir, 'policy.yaml'), policyYaml);
    handoff = await startDevHandoff({
      provider: model,
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

  it('approvers set instructions and remember facts; others are refused or propose; the planner is told', async () => {
    expect(await say(ana, 'instructions Answer in Klingon.')).toMatch(/only this channel's approvers can set/);
    expect(await say(ben, 'instructions Our fiscal year starts in April.')).toMatch(/Instructions set/);
    const tasks = (await redis.keys('hf:task:*')).length;
    expect(await say(ben, 'remember that the EMEA target is 2.1 M')).toMatch(/Remembered for this channel/);
    expect(await say(ana, 'remember that the APAC target is 1.5 M')).toMatch(/waits for one of them/);
    expect((await redis.keys('hf:task:*')).length).toBe(tasks);

    // As Teams shows it: the card's markdown escapes undone.
    const listed = (await say(ben, 'memory')).replace(/\\([[\]_*])/g, '$1');
    expect(listed).toContain('the EMEA target is 2.1 M');
    const proposal = /the APAC target is 1\.5 M \(by Ana\) \[(mp_[A-Za-z0-9_-]+)\]/.exec(listed)?.[1];
    if (!proposal) throw new Error(`no proposal in: ${listed}`);
    expect(await say(ana, `accept ${proposal}`)).toMatch(/only this channel's approvers can add/);
    expect(await say(ben, `dismiss ${proposal}`)).toMatch(/Dismissed/);

    await say(ana, 'write a note for the team');
    const first = JSON.stringify(model.requests[0]?.messages[0]?.content);
    expect(first).toContain('Our fiscal year starts in April.');
    expect(first).toContain('the EMEA target is 2.1 M');
    expect(first).not.toContain('APAC');
  });
});
