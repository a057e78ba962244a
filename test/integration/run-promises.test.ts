import { createHash } from 'node:crypto';
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import {
  type FakeAnthropicServer,
  type FakeReply,
  type MessagesRequestBody,
  startFakeAnthropic,
} from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

/** A plan whose steps need reading, commands and new files (so deleting an input is outside it). */
function plan(deliverable: string): FakeReply {
  return {
    content: [
      {
        type: 'tool_use',
        name: 'submit_plan',
        input: {
          summary: `Make ${deliverable} from the notes.`,
          steps: [{ title: 'Work', actions: ['read_files', 'run_commands', 'create_files'] }],
          deliverables: [{ name: deliverable, type: deliverable.split('.').pop() }],
        },
      },
    ],
  };
}

const call = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input }],
});
const say = (text: string): FakeReply => ({ content: [{ type: 'text', text }] });

type Block = { type: string; content?: string; text?: string; tool_use_id?: string; is_error?: boolean };

function lastUserBlocks(body: MessagesRequestBody): Block[] {
  const last = (body.messages as Array<{ role: string; content: unknown }>).at(-1)!;
  if (typeof last.content === 'string') return [{ type: 'text', text: last.content }];
  return last.content as Block[];
}
const lastResult = (body: MessagesRequestBody) => lastUserBlocks(body).find((b) => b.type === 'tool_result');

const docker = new Dockerode();
async function sandboxesOf(taskId: string) {
  return docker.listContainers({ all: true, filters: { label: [`org.handoff.task=${taskId}`] } });
}

describeDocker('what the docs promise about runs (Messages API through the SDK)', () => {
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let ana: ConsoleClient;
  let redis: Redis;

  beforeAll(async () => {
    model = await startFakeAnthropic({ apiKey: 'sk-ant-test-key' });
    handoff = await startDevHandoff({
      env: {
        ANTHROPIC_API_KEY: 'sk-ant-test-key',
        ANTHROPIC_BASE_URL: model.url,
        // One run at a time: a run waiting for a person must not hold the only slot.
        HANDOFF_RUNNER_CONCURRENCY: '1',
        HANDOFF_RUN_TIMEOUT_MS: '20000',
        HANDOFF_QUESTION_TIMEOUT_MS: '40000',
        HANDOFF_MAX_TOKENS_PER_CALL: '3000',
      },
    });
    ana = new ConsoleClient(handoff.url, 'Ana');
    redis = new Redis(handoff.redisUrl);
  });
  afterEach(() => {
    // A failed test must not leave responders for the next one.
    model.clearQueue();
  });
  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await model?.close();
  });

  async function approvedTask(request: string, files: Array<{ name: string; content: Buffer }> = []) {
    const posted = await ana.post(`@handoff ${request}`, files);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const buttons = planButtons(card.html!);
    expect((await ana.action({ action: 'approve', ...buttons })).status).toBe(200);
    return { thread, taskId: buttons.taskId };
  }

  it('a paused run keeps its sandbox, frozen, and gets /tmp back when the call is approved', async () => {
    let afterApproval = '';
    model.enqueue(
      plan('summary.md'),
      call('run_command', {
        command: 'echo scratch-42 > /tmp/scratch.txt && echo partial > /workspace/out/partial.txt',
        step: 1,
      }),
      call('delete_file', { path: '/workspace/in/notes.md', step: 1 }),
      call('run_command', { command: 'cat /tmp/scratch.txt /workspace/out/partial.txt; ls /workspace/in', step: 1 }),
      (body) => {
        afterApproval = lastResult(body)?.content ?? '';
        return call('run_command', { command: 'echo "# Summary" > /workspace/out/summary.md', step: 1 });
      },
      call('deliver_artifact', { path: '/workspace/out/summary.md' }),
      say('Made summary.md.'),
    );
    const { thread, taskId } = await approvedTask('summarise the notes', [
      { name: 'notes.md', content: Buffer.from('notes\n') },
    ]);
    const approval = await ana.waitForCard(thread, (h) => h.includes('card approval'), 60_000);

    // While it waits, its container is kept, frozen.
    const [kept] = await sandboxesOf(taskId);
    expect(kept?.State).toBe('paused');
    const approvalId = /data-approval="([^"]+)"/.exec(approval.html!)![1]!;
    expect((await ana.action({ action: 'approve-action', taskId, approvalId })).status).toBe(200);

    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 90_000);
    expect(result.html).toContain('Done');
    expect(afterApproval).toContain('scratch-42');
    expect(afterApproval).toContain('partial');
    expect(afterApproval).not.toContain('notes.md');
    // The same container ran before and after the wait, and it is gone once the run ended.
    expect(await sandboxesOf(taskId)).toEqual([]);
  }, 180_000);

  it('a paused run whose sandbox is gone resumes in a rebuilt one, with its outputs, and the model is told', async () => {
    let notice = '';
    let afterApproval = '';
    model.enqueue(
      plan('summary.md'),
      call('run_command', {
        command:
          'echo scratch-7 > /tmp/scratch.txt && mkdir -p /workspace/out/parts && echo partial > /workspace/out/parts/p1.txt',
        step: 1,
      }),
      call('delete_file', { path: '/workspace/in/notes.md', step: 1 }),
      (body) => {
        notice = lastUserBlocks(body)
          .filter((b) => b.type === 'text')
          .map((b) => b.text)
          .join('\n');
        return call('run_command', { command: 'cat /tmp/scratch.txt; cat /workspace/out/parts/p1.txt', step: 1 });
      },
      (body) => {
        afterApproval = lastResult(body)?.content ?? '';
        return call('run_command', { command: 'cp /workspace/out/parts/p1.txt /workspace/out/summary.md', step: 1 });
      },
      call('deliver_artifact', { path: '/workspace/out/summary.md' }),
      say('Made summary.md.'),
    );
    const { thread, taskId } = await approvedTask('summarise the notes again', [
      { name: 'notes.md', content: Buffer.from('notes\n') },
    ]);
    const approval = await ana.waitForCard(thread, (h) => h.includes('card approval'), 60_000);
    // The kept sandbox disappears (its time ran out, or it was on another runner's engine).
    for (const c of await sandboxesOf(taskId)) await docker.getContainer(c.Id).remove({ force: true, v: true });
    const approvalId = /data-approval="([^"]+)"/.exec(approval.html!)![1]!;
    await ana.action({ action: 'approve-action', taskId, approvalId });

    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 90_000);
    expect(result.html).toContain('Done');
    expect(notice).toContain('Note from Handoff: while the run waited, its sandbox was replaced');
    expect(afterApproval).toContain('No such file');
    expect(afterApproval).toContain('partial');
    const [file] = links(result.html!);
    expect(await (await fetch(new URL(file!.href, handoff.url))).text()).toBe('partial\n');
  }, 180_000);

  it('binds an answer to the question it follows, holds no worker while waiting, and does not count the wait', async () => {
    let answered = '';
    let release: () => void = () => undefined;
    const thanksPosted = new Promise<void>((r) => {
      release = r;
    });
    model.enqueue(
      plan('answer.md'),
      call('run_command', { command: 'echo started', step: 1 }),
      // The turn after "thanks!" was posted: it arrives as a thread message, not as an answer.
      async (_body) => {
        await thanksPosted;
        return call('list_files', { path: '/workspace', step: 1 });
      },
      call('ask_humans', { question: 'Which month should I use?' }),
      // Meanwhile a second task runs on the only worker slot.
      plan('other.md'),
      call('run_command', { command: 'echo other > /workspace/out/other.md', step: 1 }),
      call('deliver_artifact', { path: '/workspace/out/other.md' }),
      say('Made other.md.'),
      (body) => {
        answered = lastResult(body)?.content ?? '';
        return call('run_command', { command: 'echo March > /workspace/out/answer.md', step: 1 });
      },
      call('deliver_artifact', { path: '/workspace/out/answer.md' }),
      say('Used March.'),
    );
    const first = await approvedTask('write the answer');
    await ana.waitForCard(first.thread, (h) => h.includes('card progress'), 60_000);
    expect((await ana.post('thanks!', [], first.thread)).status).toBe(201);
    release();

    const question = await ana.waitForCard(first.thread, (h) => h.includes('Which month should I use?'), 60_000);
    expect(question.html).toMatch(/stays open until <time/);
    // "thanks!" reached the model once, as a message from the thread at its next turn, not as a tool result.
    const carrying = model.messageRequests
      .map((r) => lastUserBlocks(r.body))
      .filter((blocks) => JSON.stringify(blocks).includes('thanks!'));
    expect(carrying).toHaveLength(1);
    const steering = carrying[0]!.find((b) => b.type === 'text' && b.text?.includes('thanks!'));
    expect(steering?.text).toContain('<thread_message from="Ana">');

    // The waiting run holds no worker: another task runs to the end meanwhile.
    const second = await approvedTask('make the other file');
    const other = await ana.waitForCard(second.thread, (h) => h.includes('card result'), 90_000);
    expect(other.html).toContain('Done');

    // Waiting longer than the run's whole time limit (20 s) does not stop it: waiting is not work.
    const asked = Date.parse(/datetime="([^"]+)"/.exec(question.html!)![1]!) - 40_000;
    await new Promise((r) => setTimeout(r, Math.max(0, asked + 22_000 - Date.now())));
    expect((await ana.post('March, please', [], first.thread)).status).toBe(201);
    const result = await ana.waitForCard(first.thread, (h) => h.includes('card result'), 90_000);
    expect(result.html).toContain('Done');
    expect(answered).toContain('Answer from Ana');
    expect(answered).toContain('March, please');
    expect(answered).not.toContain('thanks!');
    expect((await ana.thread(first.thread)).some((m) => m.html?.includes('Answered by Ana'))).toBe(true);
  }, 240_000);

  it('continues a reply cut off at max_tokens, and a refusal is never shown as done', async () => {
    const cut: FakeReply = {
      content: [{ type: 'text', text: 'Part one of the summary, ' }],
      stop_reason: 'max_tokens',
    };
    model.enqueue(
      plan('notes.md'),
      call('run_command', { command: 'echo "# Notes" > /workspace/out/notes.md', step: 1 }),
      call('deliver_artifact', { path: '/workspace/out/notes.md' }),
      cut,
      say('part two.'),
    );
    const done = await approvedTask('write notes');
    const result = await ana.waitForCard(done.thread, (h) => h.includes('card result'), 90_000);
    expect(result.html).toContain('Done');
    expect(result.html).toContain('Part one of the summary, part two.');
    const runCalls = model.messageRequests.filter((r) => !JSON.stringify(r.body.tools).includes('submit_plan'));
    expect(runCalls.every((r) => r.body.max_tokens === 3000)).toBe(true);

    model.enqueue(
      plan('refused.md'),
      call('run_command', { command: 'echo "# Refused" > /workspace/out/refused.md', step: 1 }),
      call('deliver_artifact', { path: '/workspace/out/refused.md' }),
      { content: [{ type: 'text', text: 'I will not continue with this.' }], stop_reason: 'refusal' },
    );
    const refused = await approvedTask('write the refused file');
    const failed = await ana.waitForCard(refused.thread, (h) => h.includes('card result'), 90_000);
    expect(failed.html).toContain('The run failed');
    expect(failed.html).toContain('the model declined to continue this request: I will not continue with this.');
    expect(failed.html).not.toContain('>Done<');
  }, 180_000);

  it('keeps two inputs whose names look alike apart, audits the bytes the run gets, and shows tokens by kind', async () => {
    let seen = '';
    model.enqueue(
      plan('sums.md'),
      {
        ...call('run_command', { command: 'cd /workspace/in && sha256sum "q3 sales.csv" q3_sales.csv', step: 1 }),
        usage: {
          input_tokens: 1200,
          output_tokens: 80,
          cache_read_input_tokens: 9000,
          cache_creation_input_tokens: 500,
        },
      },
      (body) => {
        seen = lastResult(body)?.content ?? '';
        return call('run_command', { command: 'echo sums > /workspace/out/sums.md', step: 1 });
      },
      call('deliver_artifact', { path: '/workspace/out/sums.md' }),
      say('Done.'),
    );
    const a = Buffer.from('region,amount\nNorth,1\n');
    const b = Buffer.from('region,amount\nSouth,2\n');
    const { thread, taskId } = await approvedTask('sum the two files', [
      { name: 'q3 sales.csv', content: a },
      { name: 'q3_sales.csv', content: b },
    ]);
    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 90_000);
    const sha = (x: Buffer) => createHash('sha256').update(x).digest('hex');
    expect(seen).toContain(`${sha(a)}  q3 sales.csv`);
    expect(seen).toContain(`${sha(b)}  q3_sales.csv`);
    const requested = (await redis.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r))
      .find((r) => r.type === 'task.requested' && r.taskId === taskId);
    expect(requested.data.inputs).toEqual([
      { name: 'q3 sales.csv', sha256: sha(a), size: a.length },
      { name: 'q3_sales.csv', sha256: sha(b), size: b.length },
    ]);
    expect(result.html).toMatch(/in · [\d,]+ out · 9,000 cache read · 500 cache write tokens/);
  }, 180_000);
});
