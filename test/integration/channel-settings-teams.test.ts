/**
 * Channel instructions and memory on Microsoft Teams: the text commands in a channel, who may
 * use them, the planner being told (and the plan card saying so), the agent's proposals
 * accepted on the result card, and Forget on the `memory` list. The model is scripted; the
 * sandbox is real.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ModelProvider } from '../../src/agent/model/provider.ts';
import {
  activityText,
  cardExecutes,
  cardOf,
  startTeamsFakes,
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

const ana = teamsUser('Ana');
const ben = teamsUser('Ben'); // the channel's approver
const team = teamsTeam('Finance');
const general = teamsChannel(team, 'General');

const textOf = (m: TeamsMessage) => activityText(m.activity);
const verbsOf = (m: TeamsMessage | Record<string, unknown>) =>
  cardExecutes('activity' in m ? cardOf(m as TeamsMessage) : m).map((e) => e.verb);
/** The memory buttons of a card (a result card has others too). */
const memoryVerbsOf = (m: TeamsMessage | Record<string, unknown>) => verbsOf(m).filter((v) => v.startsWith('memory.'));
/** As Teams shows it: the card's markdown escapes undone. */
const shown = (t: string) => t.replace(/\\([[\]_*])/g, '$1');

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

  // The run that proposes a fact; every other request is planned by `model`.
  const standup = new ScriptedModel([
    [
      toolUse('tu_plan', 'submit_plan', {
        summary: 'Write the standup note.',
        steps: [{ title: 'Write', actions: ['run_commands', 'create_files'] }],
        deliverables: [{ name: 'standup.md', type: 'md' }],
      }),
    ],
    [toolUse('tu_mem', 'propose_memory', { fact: 'Standups are at 9:30 on Mondays' })],
    [toolUse('tu_write', 'run_command', { command: 'echo "# Standup" > /workspace/out/standup.md', step: 1 })],
    [toolUse('tu_deliver', 'deliver_artifact', { path: '/workspace/out/standup.md' })],
    [text('Wrote standup.md.')],
  ]);
  const provider: ModelProvider = {
    name: 'scripted',
    model: 'scripted-model',
    demo: false,
    createMessage: (request) =>
      JSON.stringify(request.messages[0]?.content ?? '').includes('standup note')
        ? standup.createMessage(request)
        : model.createMessage(request),
  };

  /** Posts in the channel and returns the post, its thread and the bot's first answer there. */
  async function ask(from: ReturnType<typeof teamsUser>, text: string) {
    const post = teams.channelMention({ team, channel: general, from, text });
    expect((await teams.send(post)).status).toBe(200);
    const thread = `${general.id};messageid=${post.id}`;
    const answer = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread,
      30_000,
      `an answer to "${text}"`,
    );
    return { post, thread, answer };
  }

  /** Posts in the channel and returns the bot's first answer in that new thread. */
  async function say(from: ReturnType<typeof teamsUser>, text: string): Promise<string> {
    return textOf((await ask(from, text)).answer);
  }

  async function click(
    post: Awaited<ReturnType<typeof ask>>['post'],
    card: TeamsMessage,
    who: ReturnType<typeof teamsUser>,
    verb: string,
    data: Record<string, unknown>,
  ) {
    const res = await teams.click(post, card, who, verb, data);
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/vnd.microsoft.card.adaptive');
    return { card: res.card, text: shown(res.text) };
  }

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-teams-chset-'));
    await writeFile(join(policyDir, 'policy.yaml'), policyYaml);
    handoff = await startDevHandoff({
      provider,
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
    const listed = shown(await say(ben, 'memory'));
    expect(listed).toContain('the EMEA target is 2.1 M');
    const proposal = /the APAC target is 1\.5 M \(by Ana\) \[(mp_[A-Za-z0-9_-]+)\]/.exec(listed)?.[1];
    if (!proposal) throw new Error(`no proposal in: ${listed}`);
    expect(await say(ana, `accept ${proposal}`)).toMatch(/only this channel's approvers can add/);
    expect(await say(ben, `dismiss ${proposal}`)).toMatch(/Dismissed/);

    const { thread } = await ask(ana, 'write a note for the team');
    // The answer in the thread goes out when the task is queued; the planner is asked after.
    await fakes.connector.waitFor(() => model.requests[0], 30_000, 'the planner asked');
    const first = JSON.stringify(model.requests[0]?.messages[0]?.content);
    expect(first).toContain('Our fiscal year starts in April.');
    expect(first).toContain('the EMEA target is 2.1 M');
    expect(first).not.toContain('APAC');
    // The plan card says what it follows, in counts: the texts stay off the card.
    const plan = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Plan v1'),
      60_000,
      'the plan card',
    );
    expect(textOf(plan)).toContain("Follows this channel's instructions and 1 remembered fact.");
    expect(textOf(plan)).not.toContain('fiscal year');
  });

  it("the agent's proposal: Accept on the Teams result card for approvers only, once; Forget on the memory list", async () => {
    const { post, thread } = await ask(ana, 'write the standup note');
    const plan = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Plan v1') && verbsOf(m).includes('refresh'),
      60_000,
      'the plan card',
    );
    const bens = await teams.click(post, plan, ben, 'refresh');
    const approve = cardExecutes(bens.card).find((e) => e.verb === 'plan.approve')?.data;
    expect(approve).toBeDefined();
    expect((await click(post, plan, ben, 'plan.approve', approve!)).text).toContain('Approved: the run is queued.');
    const taskId = String(approve!.taskId);

    const result = await fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === thread && textOf(m).includes('standup.md') && memoryVerbsOf(m).includes('memory.accept'),
      120_000,
      'the result card with the proposal',
    );
    expect(textOf(result)).toContain('Remember for this channel? “Standups are at 9:30 on Mondays”');
    expect(memoryVerbsOf(result)).toEqual(['memory.accept', 'memory.dismiss']);
    const data = cardExecutes(cardOf(result)).find((e) => e.verb === 'memory.accept')!.data;
    expect(data).toEqual({ proposalId: expect.stringMatching(/^mp_/) });

    // Ana asked for the task but is no approver: refused on her card; nobody else's changes.
    const edits = fakes.connector.message(result.id)!.edits;
    const byAna = await click(post, result, ana, 'memory.accept', data);
    expect(byAna.text).toContain("only this channel's approvers can add to its memory");
    expect(memoryVerbsOf(byAna.card)).toEqual(['memory.accept', 'memory.dismiss']);
    expect(fakes.connector.message(result.id)!.edits).toBe(edits);

    // Ben accepts: told so, the card drawn again without the buttons, for him and for everyone.
    const byBen = await click(post, result, ben, 'memory.accept', data);
    expect(byBen.text).toContain('Remembered for this channel: “Standups are at 9:30 on Mondays”.');
    expect(memoryVerbsOf(byBen.card)).toEqual([]);
    const redrawn = await fakes.connector.waitFor(
      () => {
        const m = fakes.connector.message(result.id)!;
        return m.edits > edits ? m : undefined;
      },
      10_000,
      'the result card edited for everyone',
    );
    expect(memoryVerbsOf(redrawn)).toEqual([]);
    expect(textOf(redrawn)).toContain('standup.md');
    // The first click won: a second one (Accept or Dismiss) is stale.
    expect((await click(post, result, ben, 'memory.dismiss', data)).text).toContain('already accepted or dismissed');
    const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r));
    const added = audit.filter((r) => r.type === 'channel.memory_added' && r.taskId === taskId);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      actor: ben.aadObjectId.toLowerCase(),
      data: { source: 'proposed', proposalId: data.proposalId },
    });

    // The memory list: Forget for approvers only.
    const anaList = (await ask(ana, 'memory')).answer;
    expect(shown(textOf(anaList))).toContain('Standups are at 9:30 on Mondays');
    expect(verbsOf(anaList)).toEqual([]);
    const { post: listPost, answer: benList } = await ask(ben, 'memory');
    const factId = /Standups are at 9:30 on Mondays \[(mem_[A-Za-z0-9_-]+)\]/.exec(shown(textOf(benList)))?.[1];
    if (!factId) throw new Error(`no fact in: ${textOf(benList)}`);
    expect(verbsOf(benList).filter((v) => v === 'memory.forget').length).toBe(2);
    expect((await click(listPost, benList, ana, 'memory.forget', { factId })).text).toContain(
      "only this channel's approvers can forget",
    );
    const forgot = await click(listPost, benList, ben, 'memory.forget', { factId });
    expect(forgot.text).toContain('Forgotten: “Standups are at 9:30 on Mondays”.');
    // The list drawn again: the fact is gone, the other one keeps its Forget.
    expect(cardExecutes(forgot.card).map((e) => e.data.factId)).not.toContain(factId);
    expect(cardExecutes(forgot.card).map((e) => e.data.factId)).toHaveLength(1);
    expect(verbsOf(forgot.card)).toEqual(['memory.forget']);
    expect((await click(listPost, benList, ben, 'memory.forget', { factId })).text).toContain('no such fact');
  });
});
