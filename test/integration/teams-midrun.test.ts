/**
 * Mid-run interaction on Microsoft Teams, in a channel thread: a paused watched call decided
 * on its card, a question answered by a thread reply, and Cancel on the progress card. The
 * model is scripted (one script per request), the sandbox is real.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ModelProvider, ModelRequest } from '../../src/agent/model/provider.ts';
import { queueNames, runJobId } from '../../src/queue/index.ts';
import {
  activityText,
  cardExecutes,
  cardOf,
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
const ben = teamsUser('Ben'); // the channel's approver, by Entra object id
const dan = teamsUser('Dan'); // neither requester nor approver
const team = teamsTeam('Operations');
const general = teamsChannel(team, 'General');

const policyYaml = `version: 1
channels:
  "teams:${team.id}/${general.id}":
    approvers:
      users: [${ben.aadObjectId}]
`;

const executes = cardExecutes;
const textOf = (m: TeamsMessage) => activityText(m.activity);
const verbsOf = (m: TeamsMessage) => executes(cardOf(m)).map((e) => e.verb);

/** Each request carries one of these words; its planner and run turns come from that script. */
const scripts = new Map<string, ScriptedModel>();

const requestText = (request: ModelRequest) => JSON.stringify(request.messages[0]?.content ?? '');

const provider: ModelProvider = {
  name: 'scripted',
  model: 'scripted-model',
  demo: false,
  async createMessage(request) {
    const first = requestText(request);
    for (const [word, script] of scripts) if (first.includes(word)) return script.createMessage(request);
    throw new Error(`no script for the request ${first.slice(0, 200)}`);
  },
};

const planTurn = (summary: string, actions: string[], deliverable: string) => [
  toolUse('tu_plan', 'submit_plan', {
    summary,
    steps: [{ title: 'Do the work', actions }],
    deliverables: [{ name: deliverable, type: 'md' }],
  }),
];

/** Every tool_result block the model was sent, across all its requests. */
function toolResults(script: ScriptedModel): Array<{ tool_use_id: string; content: string; is_error?: boolean }> {
  return script.requests.flatMap((r) =>
    r.messages.flatMap((m) =>
      Array.isArray(m.content)
        ? (m.content as Array<{ type: string; tool_use_id: string; content: unknown; is_error?: boolean }>)
            .filter((b) => b.type === 'tool_result')
            .map((b) => ({ ...b, content: typeof b.content === 'string' ? b.content : JSON.stringify(b.content) }))
        : [],
    ),
  );
}

describeDocker('Teams: mid-run approvals, questions, thread replies and cancel in a channel thread', () => {
  let fakes: TeamsFakes;
  let handoff: TestHandoff;
  let teams: TeamsSender;
  let redis: Redis;
  let queue: Queue;
  let queueRedis: Redis;
  let policyDir: string;

  async function click(
    place: TeamsActivity,
    card: TeamsMessage,
    who: ReturnType<typeof teamsUser>,
    verb: string,
    data?: Record<string, unknown>,
  ) {
    const res = await teams.click(place, card, who, verb, data);
    expect(res.status).toBe(200);
    return { body: { type: res.type, value: res.card }, text: res.text };
  }

  /** Posts a request in the channel; waits for its plan card and has Ben approve it. */
  async function requestApproved(request: string): Promise<{ post: TeamsActivity; thread: string; taskId: string }> {
    const post = teams.channelMention({ team, channel: general, from: ana, text: request });
    expect((await teams.send(post)).status).toBe(200);
    const thread = `${general.id};messageid=${post.id}`;
    const plan = await fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === thread &&
        textOf(m).includes('Plan v1') &&
        executes(cardOf(m)).some((e) => e.verb === 'plan.approve' || e.verb === 'refresh'),
      120_000,
      'the plan card',
    );
    const bens = await click(post, plan, ben, 'refresh');
    const approve = executes(bens.body.value).find((e) => e.verb === 'plan.approve')?.data;
    expect(approve).toBeDefined();
    const ok = await click(post, plan, ben, 'plan.approve', approve);
    expect(ok.text).toContain('Approved: the run is queued.');
    return { post, thread, taskId: String(approve!.taskId) };
  }

  /** Audit records of a task, oldest first. */
  async function auditOf(taskId: string): Promise<Array<{ type: string; actor?: string; data?: unknown }>> {
    return (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r)).filter((r) => r.taskId === taskId);
  }

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-teams-midrun-'));
    await writeFile(join(policyDir, 'policy.yaml'), policyYaml);
    handoff = await startDevHandoff({
      provider,
      env: {
        HANDOFF_POLICY: join(policyDir, 'policy.yaml'),
        ...fakes.handoffEnv(),
      },
    });
    teams = fakes.sender(handoff.url);
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
    queueRedis = new Redis(handoff.redisUrl, { maxRetriesPerRequest: null });
    queueRedis.on('error', () => undefined);
    queue = new Queue(queueNames.run, { connection: queueRedis, prefix: 'hfq' });
  }, 60_000);

  afterAll(async () => {
    await queue?.close();
    queueRedis?.disconnect();
    redis?.disconnect();
    await handoff?.close();
    await fakes?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it('a watched call waits on its card: a non-approver is refused, the approver continues the run, once', async () => {
    const script = new ScriptedModel([
      planTurn('Tidy the drafts, then write done.md.', ['run_commands', 'create_files'], 'done.md'),
      // Deleting is watched, and outside the approved plan: the run pauses for a person.
      [toolUse('tu_delete', 'delete_file', { path: '/workspace/out/draft.md', step: 1 })],
      [toolUse('tu_write', 'run_command', { command: 'echo "# Done" > /workspace/out/done.md', step: 1 })],
      [toolUse('tu_deliver', 'deliver_artifact', { path: '/workspace/out/done.md' })],
      [text('Removed the draft and wrote done.md.')],
    ]);
    scripts.set('tidy the drafts folder', script);
    const { post, thread, taskId } = await requestApproved('tidy the drafts folder and write done.md');

    const approval = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && verbsOf(m).includes('action.approve'),
      120_000,
      'the approval card in the thread',
    );
    // "Approve for the rest of this run" is offered; "Always allow" is not (the policy does not allow it).
    expect(verbsOf(approval)).toEqual(['action.approve', 'action.deny', 'action.grant_run']);
    expect(textOf(approval)).toContain('Approval needed');
    expect(textOf(approval)).toContain('/workspace/out/draft.md');
    const data = executes(cardOf(approval)).find((e) => e.verb === 'action.approve')!.data;
    expect(data).toMatchObject({ taskId });
    expect(typeof data.approvalId).toBe('string');
    // The run is parked: its job waits, holding no worker.
    expect(await queue.getJobState(runJobId(taskId, 1))).toBe('delayed');
    const turns = script.requests.length;
    expect(turns).toBe(2);

    // Dan is no approver: refused on his card; the message everyone sees and the run stay as they were.
    const edits = fakes.connector.message(approval.id)!.edits;
    const refused = await click(post, approval, dan, 'action.approve', data);
    expect(refused.body.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(refused.text).toContain('you are not an approver here');
    expect(executes(refused.body.value).map((e) => e.verb)).toEqual([
      'action.approve',
      'action.deny',
      'action.grant_run',
    ]);
    // A grant click is authorised exactly like Approve, and one the card did not offer is refused.
    expect((await click(post, approval, dan, 'action.grant_run', data)).text).toContain('you are not an approver here');
    expect((await click(post, approval, ben, 'action.grant_channel', data)).text).toContain(
      'does not allow standing grants',
    );
    // The requester may not approve a step of her own request either.
    const own = await click(post, approval, ana, 'action.approve', data);
    expect(own.text).toContain('you cannot approve a step of your own request');
    expect(fakes.connector.message(approval.id)!.edits).toBe(edits);
    expect(await queue.getJobState(runJobId(taskId, 1))).toBe('delayed');
    expect(script.requests.length).toBe(turns);
    expect((await auditOf(taskId)).map((r) => r.type)).not.toContain('action.approved');

    // Ben approves: told so on his card, the card changes for everyone, the run goes on.
    const ok = await click(post, approval, ben, 'action.approve', data);
    expect(ok.text).toContain('Approved: the run continues.');
    expect(ok.text).toContain('Approved by Ben');
    const updated = await fakes.connector.waitFor(
      () => {
        const m = fakes.connector.message(approval.id)!;
        return m.edits > edits && textOf(m).includes('Approved by Ben') ? m : undefined;
      },
      10_000,
      'the approval card edited for everyone',
    );
    expect(verbsOf(updated)).toEqual([]);
    // A second click decides nothing more.
    const again = await click(post, approval, ben, 'action.approve', data);
    expect(again.text).toContain('already approved by Ben');
    const late = await click(post, approval, dan, 'action.deny', data);
    expect(late.text).toContain('already approved by Ben');

    const result = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Done') && textOf(m).includes('done.md'),
      120_000,
      'the result card',
    );
    expect(textOf(result)).toContain('Removed the draft and wrote done.md.');
    // The paused call ran once, after the decision, and the model saw its real result.
    const deleted = toolResults(script).filter((r) => r.tool_use_id === 'tu_delete');
    expect(deleted.length).toBeGreaterThan(0);
    expect(deleted.every((r) => r.content.includes('deleted /workspace/out/draft.md') && !r.is_error)).toBe(true);
    const audit = await auditOf(taskId);
    const approved = audit.filter((r) => r.type === 'action.approved');
    expect(approved).toHaveLength(1);
    expect(approved[0]!.actor).toBe(ben.aadObjectId.toLowerCase());
    expect(audit.map((r) => r.type)).not.toContain('action.denied');
  }, 300_000);

  it('a question is answered by the requester’s reply in the thread, not by someone who may not steer', async () => {
    const script = new ScriptedModel([
      planTurn('Ask who to greet, then write greeting.md.', ['run_commands', 'create_files'], 'greeting.md'),
      [toolUse('tu_ask', 'ask_humans', { question: 'Who should the greeting address?' })],
      [
        toolUse('tu_write', 'run_command', {
          command: `printf '# Hello Dana\\n' > /workspace/out/greeting.md`,
          step: 1,
        }),
      ],
      [toolUse('tu_deliver', 'deliver_artifact', { path: '/workspace/out/greeting.md' })],
      [text('Wrote greeting.md for Dana.')],
    ]);
    scripts.set('write a greeting card', script);
    const { post, thread, taskId } = await requestApproved('write a greeting card');

    const question = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Who should the greeting address?'),
      120_000,
      'the question card in the thread',
    );
    expect(textOf(question)).toContain('The agent asks');
    expect(textOf(question)).not.toContain('Answered by');
    expect(await queue.getJobState(runJobId(taskId, 1))).toBe('delayed');
    expect(script.requests.length).toBe(2);

    // Dan replies in the thread (mentioning the bot, as Teams needs in a channel): he may not steer this task.
    const fromDan = teams.channelMention({
      team,
      channel: general,
      from: dan,
      text: 'Greet Mallory instead',
      replyToRoot: post.id,
    });
    expect(fromDan.conversation.id).toBe(thread);
    expect((await teams.send(fromDan)).status).toBe(200);
    // Messages are handled after the HTTP answer: give it time to (not) reach the task.
    await new Promise((r) => setTimeout(r, 2000));
    expect(await queue.getJobState(runJobId(taskId, 1))).toBe('delayed');
    expect(script.requests.length).toBe(2);
    expect(textOf(fakes.connector.message(question.id)!)).not.toContain('Answered by');
    const danId = dan.aadObjectId.toLowerCase();
    expect((await auditOf(taskId)).filter((r) => r.actor === danId)).toEqual([]);

    // Ana, the requester, replies in the thread: that answers the question and the run goes on.
    const fromAna = teams.channelMention({
      team,
      channel: general,
      from: ana,
      text: 'Dana, please',
      replyToRoot: post.id,
    });
    expect((await teams.send(fromAna)).status).toBe(200);
    const answered = await fakes.connector.waitFor(
      () => {
        const m = fakes.connector.message(question.id)!;
        return textOf(m).includes('Answered by Ana') ? m : undefined;
      },
      30_000,
      'the question card showing who answered',
    );
    expect(answered.edits).toBeGreaterThan(0);

    const result = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && textOf(m).includes('Done') && textOf(m).includes('greeting.md'),
      120_000,
      'the result card',
    );
    expect(textOf(result)).toContain('Wrote greeting.md for Dana.');
    // Ana's reply reached the model as the question's answer; Dan's words never reached it.
    const answers = toolResults(script).filter((r) => r.tool_use_id === 'tu_ask');
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.every((r) => r.content.includes('Answer from Ana') && r.content.includes('Dana, please'))).toBe(
      true,
    );
    expect(script.requests.some((r) => JSON.stringify(r.messages).includes('Mallory'))).toBe(false);
    const audit = await auditOf(taskId);
    expect(audit.filter((r) => r.type === 'run.answer').map((r) => r.actor)).toEqual([ana.aadObjectId.toLowerCase()]);
    expect(audit.filter((r) => r.actor === danId)).toEqual([]);
  }, 300_000);

  it('Cancel on the progress card stops a running task for its requester', async () => {
    const script = new ScriptedModel([
      planTurn('Count slowly, then write count.md.', ['run_commands', 'create_files'], 'count.md'),
      [
        toolUse('tu_slow', 'run_command', {
          command: 'echo counting-has-started; sleep 120; echo 1 > /workspace/out/count.md',
          step: 1,
        }),
      ],
      [text('This turn is never reached.')],
    ]);
    scripts.set('count slowly to a hundred', script);
    const { post, thread, taskId } = await requestApproved('count slowly to a hundred');

    // The command is under way in the sandbox: its output is on the progress card.
    const progress = await fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === thread && verbsOf(m).includes('task.cancel') && textOf(m).includes('counting-has-started'),
      120_000,
      'a progress card with Cancel and the command’s output',
    );
    expect(executes(cardOf(progress)).find((e) => e.verb === 'task.cancel')!.data).toEqual({ taskId });
    expect(await queue.getJobState(runJobId(taskId, 1))).toBe('active');

    // Dan may not cancel someone else's task here.
    const refused = await click(post, progress, dan, 'task.cancel', { taskId });
    expect(refused.text).toContain('only the requester or an approver can cancel this task');
    expect((await auditOf(taskId)).map((r) => r.type)).not.toContain('task.cancel_requested');

    const cancel = await click(post, progress, ana, 'task.cancel', { taskId });
    expect(cancel.text).toContain('Cancelling: the run stops within seconds.');
    const result = await fakes.connector.waitForMessage(
      (m) => m.conversationId === thread && /Cancelled/.test(textOf(m)) && !verbsOf(m).includes('task.cancel'),
      60_000,
      'the result card saying cancelled',
    );
    expect(textOf(result)).not.toContain('Done');
    // Stopped in the middle of its command: the model was not asked again.
    expect(script.requests.length).toBe(2);
    const audit = await auditOf(taskId);
    expect(audit.find((r) => r.type === 'task.cancel_requested')?.actor).toBe(ana.aadObjectId.toLowerCase());
    // The progress card ends without its Cancel button.
    const closed = await fakes.connector.waitFor(
      () => {
        const m = fakes.connector.message(progress.id)!;
        return verbsOf(m).includes('task.cancel') ? undefined : m;
      },
      30_000,
      'the progress card closed',
    );
    expect(textOf(closed)).toContain('Run finished');
  }, 300_000);
});
