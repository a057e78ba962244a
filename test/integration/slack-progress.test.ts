import { join } from 'node:path';
import { Writable } from 'node:stream';
import { webApi } from '@slack/bolt';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { SlackSurface } from '../../src/bot/surfaces/slack/index.ts';
import { newTask } from '../../src/core/index.ts';
import { LocalArtifactStore, StateStore } from '../../src/storage/index.ts';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import {
  type FakeMessage,
  FakeSlack,
  type FakeStream,
  SlackSender,
  streamChunkProblems,
} from '../fakes/slack-server.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const botToken = 'xoxb-4242-test-TOKEN-must-never-be-logged';
const signingSecret = 'slack-signing-secret-for-the-tests';

const ana = { id: 'UANA', name: 'Ana' }; // requester
const ben = { id: 'UBEN', name: 'Ben' }; // approver

// --- the scripted model: a two-step plan, each step a command -----------------------------

const planDraft = {
  summary: 'Crunch the numbers and write report.md.',
  steps: [
    { title: 'Crunch the numbers', detail: 'In the sandbox.', actions: ['read_files', 'run_commands'] },
    { title: 'Write the report', detail: 'As markdown.', actions: ['run_commands', 'create_files'] },
  ],
  deliverables: [{ name: 'report.md', type: 'md' }],
};

type Block = { type: string; text?: string; name?: string; input?: unknown };
type Message = { role: string; content: string | Block[] };
const blocksOf = (m: Message | undefined): Block[] => (Array.isArray(m?.content) ? m.content : []);
const call = (name: string, input: Record<string, unknown>, text?: string): FakeReply => ({
  content: [...(text ? [{ type: 'text' as const, text }] : []), { type: 'tool_use', name, input }],
});

/** A request that says "quietly" runs a 25-second command that prints nothing. */
function scriptModel(fake: FakeAnthropicServer): void {
  fake.setHandler((body) => {
    const tools = (Array.isArray(body.tools) ? body.tools : []) as Array<{ name: string }>;
    if (tools.some((t) => t.name === 'submit_plan')) {
      return { content: [{ type: 'tool_use', name: 'submit_plan', input: planDraft }] };
    }
    const messages = (Array.isArray(body.messages) ? body.messages : []) as Message[];
    const quiet = JSON.stringify(messages[0] ?? '').includes('quietly');
    const calls = messages.filter((m) => m.role === 'assistant').flatMap(blocksOf);
    const done = calls.filter((b) => b.type === 'tool_use').length;
    if (done === 0) {
      const command = quiet ? 'sleep 25' : 'for i in 1 2 3; do echo "crunching $i"; sleep 1; done';
      return call('run_command', { command, step: 1 }, 'Crunching.');
    }
    if (done === 1) {
      return call('run_command', {
        command: "printf '# Report\\nAll numbers add up.\\n' > /workspace/out/report.md",
        step: 2,
      });
    }
    if (done === 2) return call('deliver_artifact', { path: '/workspace/out/report.md', step: 2 });
    return { content: [{ type: 'text', text: 'Delivered report.md.' }] };
  });
}

function blockText(m: FakeMessage): string {
  return JSON.stringify(m.blocks);
}

/** Each task's statuses in the order the stream received them, repeats collapsed. */
function taskHistory(streams: FakeStream[]): Map<string, string[]> {
  const history = new Map<string, string[]>();
  for (const s of streams) {
    for (const { chunk } of s.chunks) {
      if (chunk.type !== 'task_update') continue;
      const id = String(chunk.id);
      const seen = history.get(id) ?? [];
      if (seen.at(-1) !== chunk.status) seen.push(String(chunk.status));
      history.set(id, seen);
    }
  }
  return history;
}

describeDocker('Slack progress: native stream with a fallback, real Bolt app, fake Slack and model', () => {
  let fake: FakeSlack;
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let slack: SlackSender;
  let redis: Redis;
  const logLines: string[] = [];
  let tsSeq = 0;
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(800_000 + ++tsSeq)}`;
  const taskState = async (id: string) =>
    (JSON.parse((await redis.get(`hf:task:${id}`)) ?? '{}') as { state?: string }).state;

  /** Mentions the bot, approves the plan as Ben and waits for the final message; returns the thread. */
  async function runTask(channel: string, text: string): Promise<{ thread: string; taskId: string }> {
    const thread = newTs();
    const res = await slack.event({ type: 'app_mention', user: ana.id, text: `<@UBOT> ${text}`, ts: thread, channel });
    expect(res.status).toBe(200);
    const card = await fake.waitFor(
      'plan card',
      () => fake.thread(channel, thread).find((m) => blockText(m).includes('handoff_approve')),
      120_000,
    );
    const approve = (card.blocks as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>)
      .flatMap((b) => b.elements ?? [])
      .find((e) => e.action_id === 'handoff_approve')!;
    const taskId = (JSON.parse(approve.value!) as { t: string }).t;
    await slack.click(
      ben,
      channel,
      { ts: card.ts, thread_ts: thread },
      { action_id: 'handoff_approve', value: approve.value! },
    );
    await fake.waitFor('final message', () => fake.thread(channel, thread).find((m) => m.text === 'Done'), 180_000);
    expect(await taskState(taskId)).toBe('succeeded');
    return { thread, taskId };
  }

  beforeAll(async () => {
    fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' }, UBEN: { name: 'Ben' } } });
    await fake.start();
    model = await startFakeAnthropic();
    scriptModel(model);
    const sink = new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    handoff = await startDevHandoff({
      env: {
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: fake.apiUrl,
        SLACK_APPROVERS: JSON.stringify({ '*': ['UBEN'] }),
        ANTHROPIC_API_KEY: 'sk-ant-test-key',
        ANTHROPIC_BASE_URL: model.url,
        HANDOFF_MODEL: 'claude-test',
      },
      logger: pino({ level: 'debug' }, sink),
    });
    slack = new SlackSender(handoff.url, signingSecret);
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await model?.close();
    await fake?.close();
  });

  it('streams the plan and its steps pending → in progress → complete, ≤ 1 call/s, stops at the end', async () => {
    const { thread } = await runTask('C1', 'crunch the numbers into a report');

    const streams = fake.streamsIn('C1', thread);
    expect(streams).toHaveLength(1);
    const [stream] = streams as [FakeStream];
    expect(stream.taskDisplayMode).toBe('plan');
    // In a channel the stream is addressed to the requester in their workspace.
    expect(stream.recipientUserId).toBe(ana.id);
    expect(stream.recipientTeamId).toBe('T1');

    // The plan title comes with the start; every chunk the bot sent was valid.
    const first = stream.chunks.filter((c) => c.method === 'chat.startStream').map((c) => c.chunk);
    expect(first.find((c) => c.type === 'plan_update')?.title).toContain('Crunch the numbers and write report.md.');
    expect(streamChunkProblems(stream.chunks.map((c) => c.chunk))).toEqual([]);
    // Cancel rides along as a blocks chunk, the same button as on the edited message.
    expect(JSON.stringify(first.filter((c) => c.type === 'blocks'))).toContain('handoff_cancel');
    expect(fake.calls.filter((c) => c.error === 'invalid_chunks')).toEqual([]);

    // Each step moved pending → in progress → complete, in that order, with its title.
    const history = taskHistory(streams);
    expect(history.get('step-2')).toEqual(['pending', 'in_progress', 'complete']);
    expect(history.get('step-1')?.slice(-2)).toEqual(['in_progress', 'complete']);
    expect(history.get('step-1')?.[0]).toMatch(/pending|in_progress/);
    const titles = stream.chunks.filter((c) => c.chunk.type === 'task_update').map((c) => c.chunk.title);
    expect(new Set(titles)).toEqual(new Set(['Crunch the numbers', 'Write the report']));

    // At most one call per second on the stream, and it was stopped with the final state.
    for (let i = 1; i < stream.callTimes.length; i++) {
      expect(stream.callTimes[i]! - stream.callTimes[i - 1]!).toBeGreaterThanOrEqual(950);
    }
    expect(stream.stoppedAt).toBeDefined();
    const last = stream.chunks.filter((c) => c.method === 'chat.stopStream').map((c) => c.chunk);
    expect(last.find((c) => c.type === 'plan_update')?.title).toContain('finished after');
    expect(
      fake.callsOf('chat.appendStream').filter((c) => c.args.ts === stream.ts && c.at > stream.stoppedAt!),
    ).toEqual([]);

    // No edited progress message in this thread; the result is its own message.
    expect(fake.thread('C1', thread).filter((m) => blockText(m).includes('elapsed'))).toEqual([]);
    const result = fake.thread('C1', thread).find((m) => m.text === 'Done')!;
    expect(result.ts).not.toBe(stream.ts);

    // "is working…" while running, cleared at the end.
    const statuses = fake.assistantStatuses.get(`C1:${thread}`) ?? [];
    expect(statuses[0]).toBe('is working…');
    expect(statuses.at(-1)).toBe('');
    expect(logLines.join('')).not.toContain(botToken);
  }, 300_000);

  it('where streaming is not allowed, falls back to the message edited in place', async () => {
    fake.disableStreaming('method_not_supported_for_channel_type');
    try {
      const { thread } = await runTask('C2', 'crunch the numbers into a report');
      // The start was tried and refused; nothing was streamed in the thread.
      expect(fake.callsOf('chat.startStream').some((c) => c.args.thread_ts === thread && c.error !== undefined)).toBe(
        true,
      );
      expect(fake.streamsIn('C2', thread)).toEqual([]);
      // The progress message exists, was edited, and ends without the Cancel button.
      const progress = fake.thread('C2', thread).filter((m) => /elapsed|Run finished/.test(blockText(m)));
      expect(progress).toHaveLength(1);
      // The last edit is spaced like the others, so it may land just after the result.
      const message = await fake.waitFor('the finished progress message', () =>
        progress.find((m) => m.text === 'Run finished'),
      );
      expect(message.edits).toBeGreaterThanOrEqual(1);
      expect(message.text).toBe('Run finished');
      expect(blockText(message)).not.toContain('handoff_cancel');
      const edits = fake.callsOf('chat.update').filter((c) => c.args.ts === message.ts);
      for (let i = 1; i < edits.length; i++) expect(edits[i]!.at - edits[i - 1]!.at).toBeGreaterThanOrEqual(950);
      // Remembered for the task: one refused start, no second try.
      expect(fake.callsOf('chat.startStream').filter((c) => c.args.thread_ts === thread)).toHaveLength(1);
    } finally {
      fake.enableStreaming();
    }
  }, 300_000);

  it('a long quiet command: the stream gets a sign of life at least every 10 seconds', async () => {
    const { thread } = await runTask('C3', 'quietly crunch the numbers into a report');
    const [stream] = fake.streamsIn('C3', thread) as [FakeStream];
    expect(stream).toBeDefined();
    // The 25 s command printed nothing; the stream was still written to every ≤ 10 s.
    const gaps = stream.callTimes.slice(1).map((t, i) => t - stream.callTimes[i]!);
    expect(stream.callTimes.at(-1)! - stream.callTimes[0]!).toBeGreaterThanOrEqual(25_000);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(11_000);
    // The runner itself said nothing for those stretches: the appends were the surface's heartbeat.
    expect(gaps.filter((g) => g >= 9_000).length).toBeGreaterThanOrEqual(2);
    // Those appends carried the elapsed time in the plan title.
    const elapsed = stream.chunks
      .filter((c) => c.method === 'chat.appendStream' && c.chunk.type === 'plan_update')
      .map((c) => Number(/(\d+) s elapsed/.exec(String(c.chunk.title))?.[1] ?? Number.NaN))
      .filter((n) => Number.isFinite(n));
    expect(Math.max(...elapsed)).toBeGreaterThanOrEqual(20);
  }, 300_000);

  it('an old stream continues in a new one; a refused append falls back to the edited message', async () => {
    const client = new webApi.WebClient(botToken, { slackApiUrl: fake.apiUrl, rejectRateLimitedCalls: true });
    const state = new StateStore(redis);
    const surface = new SlackSurface({
      client,
      logger: pino({ level: 'silent' }),
      state,
      store: new LocalArtifactStore({
        root: join(handoff.dataDir, 'z'),
        signingSecret: 's'.repeat(32),
        publicUrl: 'http://127.0.0.1',
      }),
      maxUploadBytes: 1024,
      minEditIntervalMs: 100,
      heartbeatMs: 300,
      maxStreamAgeMs: 1500,
    });
    const thread = newTs();
    const conversation = { surface: 'slack' as const, channel: 'C20', thread };
    const task = newTask(
      { id: `t_roll${tsSeq}`, conversation, requester: ana, request: 'x', inputs: [], demo: false },
      new Date(),
    );
    await state.createTask({ ...task, state: 'running' });
    const progress = (elapsedMs: number, second: 'pending' | 'running') => ({
      kind: 'progress' as const,
      taskId: task.id,
      steps: [
        { title: 'One', status: second === 'running' ? ('done' as const) : ('running' as const) },
        { title: 'Two', status: second },
      ],
      elapsedMs,
      usage: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
      cancellable: true,
      demo: false,
    });
    try {
      const ref = await surface.post(conversation, progress(0, 'pending'));
      expect(ref).toMatch(/^stream:C20:/);
      await state.setMessageRef(task.id, 'progress', ref);
      // Past the stream's age the heartbeat moves on to a fresh stream replaying every step.
      const streams = await fake.waitFor('a second stream', () =>
        fake.streamsIn('C20', thread).length >= 2 ? fake.streamsIn('C20', thread) : undefined,
      );
      const [old, fresh] = streams as [FakeStream, FakeStream];
      expect(old.stoppedAt).toBeDefined();
      expect(JSON.stringify(old.chunks.at(-1)?.chunk)).toContain('Continued below');
      const replayed = fresh.chunks.filter((c) => c.method === 'chat.startStream' && c.chunk.type === 'task_update');
      expect(replayed.map((c) => c.chunk.id)).toEqual(['step-1', 'step-2']);
      // Every bot finds the current stream through the task's progress ref (written just
      // after the new stream starts).
      await vi.waitFor(
        async () => expect(await state.getMessageRef(task.id, 'progress')).toBe(`stream:C20:${fresh.ts}`),
        { timeout: 10_000, interval: 50 },
      );

      // A 429 on an append: the next call on the stream waits for its Retry-After.
      fake.rateLimit('chat.appendStream', 1, 1);
      const before = fake.callsOf('chat.appendStream').length;
      await surface.update(conversation, ref, progress(2500, 'pending'));
      const [limited, retried] = await fake.waitFor('an append after a 429', () => {
        const calls = fake.callsOf('chat.appendStream').slice(before);
        const i = calls.findIndex((c) => c.status === 429);
        return i >= 0 && calls[i + 1] ? [calls[i]!, calls[i + 1]!] : undefined;
      });
      expect(retried.at - limited.at).toBeGreaterThanOrEqual(950);

      // Streaming refused mid-run: the task moves to the edited message for good.
      fake.disableStreaming('not_allowed');
      await surface.update(conversation, ref, progress(3000, 'running'));
      const message = await fake.waitFor('the fallback message', () =>
        fake.thread('C20', thread).find((m) => m.text === 'Working…'),
      );
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && (await state.getMessageRef(task.id, 'progress')) !== `C20:${message.ts}`) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await state.getMessageRef(task.id, 'progress')).toBe(`C20:${message.ts}`);
      fake.enableStreaming();
      const appendsBefore = fake.callsOf('chat.appendStream').length;
      await surface.update(conversation, ref, { ...progress(4000, 'running'), cancellable: false });
      await fake.waitFor('the message finished', () => (message.text === 'Run finished' ? message : undefined));
      expect(fake.callsOf('chat.appendStream').length).toBe(appendsBefore);
    } finally {
      fake.enableStreaming();
      await state.updateTask(task.id, (t) => ({ ...t, state: 'succeeded' }));
      surface.close();
    }
  }, 60_000);
});
