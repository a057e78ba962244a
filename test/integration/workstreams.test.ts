import { Queue } from 'bullmq';
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DemoProvider } from '../../src/agent/index.ts';
import type {
  ContentBlock,
  MessageParam,
  ModelProvider,
  ModelRequest,
  ModelResponse,
} from '../../src/agent/model/provider.ts';
import { type ChildFailureRule, zeroUsage } from '../../src/core/index.ts';
import { workstreamJobId, workstreamQueueName } from '../../src/queue/index.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { readXlsx } from '../helpers/office.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
const request = '@handoff build a workbook from the attached sales CSV with one sheet per region';
const regions = ['north', 'south', 'east', 'west'];
const docker = new Dockerode();

/** The workstream sandboxes (containers named handoff-ws-…) of each task on this engine. */
async function workstreamContainers(): Promise<Map<string, string[]>> {
  const list = await docker.listContainers({ all: true, filters: { label: ['org.handoff.sandbox=1'] } });
  const byTask = new Map<string, string[]>();
  for (const c of list) {
    if (!c.Names.some((n) => n.startsWith('/handoff-ws-'))) continue;
    const task = c.Labels['org.handoff.task'] ?? '';
    byTask.set(task, [...(byTask.get(task) ?? []), c.Id]);
  }
  return byTask;
}

function textOf(m: MessageParam | undefined): string {
  if (!m) return '';
  if (typeof m.content === 'string') return m.content;
  return m.content.map((b) => (b.type === 'text' ? b.text : '')).join('\n');
}

function endTurn(text: string): ModelResponse {
  return {
    content: [{ type: 'text', text, citations: null } as ContentBlock],
    stopReason: 'end_turn',
    usage: zeroUsage,
    model: 'demo',
  };
}

function aborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (signal?.aborted) reject(signal.reason);
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/**
 * The demo model with hooks for the test: the plan's failure rule, and per workstream a
 * first turn that waits until N workstream sandboxes of the task exist at once (proof of
 * parallelism without timing), blocks until cancelled, gives up (a crashed child run), or
 * starts a command that never ends (a child that times out).
 */
class FanOutModel implements ModelProvider {
  readonly name = 'demo';
  readonly model = 'demo';
  readonly demo = true;
  private readonly inner = new DemoProvider();
  rule: ChildFailureRule = 'retry';
  /** Each workstream's first turn waits until this many workstream sandboxes of the task run at once. */
  barrier = 0;
  block = false;
  crash: { id: string; times: number } | undefined;
  hang: string | undefined;
  readonly firstTurns = new Map<string, number>();
  maxParallelSeen = 0;
  /** This Handoff's Redis: only its own tasks' sandboxes count. */
  redis: Redis | undefined;

  async createMessage(req: ModelRequest, signal?: AbortSignal): Promise<ModelResponse> {
    const first = textOf(req.messages[0]);
    if (req.tools.some((t) => t.name === 'submit_plan')) {
      const res = await this.inner.createMessage(req);
      for (const b of res.content)
        if (b.type === 'tool_use') (b.input as Record<string, unknown>).onChildFailure = this.rule;
      return res;
    }
    const child = /You are workstream "([a-z0-9_-]+)"/.exec(first)?.[1];
    if (child && req.messages.filter((m) => m.role === 'assistant').length === 0) {
      const n = (this.firstTurns.get(child) ?? 0) + 1;
      this.firstTurns.set(child, n);
      if (this.barrier > 0) await this.waitForParallel(this.barrier, signal);
      if (this.block) await aborted(signal);
      if (this.crash?.id === child && n <= this.crash.times) return endTurn('I could not make sense of this region.');
      if (this.hang === child) {
        return {
          content: [
            {
              type: 'tool_use',
              id: `toolu_hang_${n}`,
              name: 'run_command',
              input: { command: 'sleep 600' },
            } as ContentBlock,
          ],
          stopReason: 'tool_use',
          usage: zeroUsage,
          model: 'demo',
        };
      }
    }
    return this.inner.createMessage(req);
  }

  private async waitForParallel(n: number, signal?: AbortSignal): Promise<void> {
    // Released only when n workstream sandboxes of one task exist at the same moment.
    for (let i = 0; i < 1200; i++) {
      if (signal?.aborted) throw signal.reason;
      let most = 0;
      for (const [task, ids] of await workstreamContainers())
        if (ids.length > most && (await this.redis?.exists(`hf:task:${task}`))) most = ids.length;
      this.maxParallelSeen = Math.max(this.maxParallelSeen, most);
      if (most >= n) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`never saw ${n} workstream sandboxes at once (at most ${this.maxParallelSeen})`);
  }
}

describeDocker('workstreams: a plan that fans out into parallel child runs (BullMQ flows)', () => {
  let handoff: TestHandoff;
  let client: ConsoleClient;
  let redis: Redis;
  let childJobs: Queue;
  let runJobs: Queue;
  const model = new FanOutModel();

  beforeAll(async () => {
    handoff = await startDevHandoff({ provider: model, env: { HANDOFF_RUN_TIMEOUT_MS: '60000' } });
    client = new ConsoleClient(handoff.url);
    redis = new Redis(handoff.redisUrl);
    model.redis = redis;
    childJobs = new Queue(workstreamQueueName, { connection: redis, prefix: 'hfq' });
    runJobs = new Queue('handoff-run', { connection: redis, prefix: 'hfq' });
  });
  afterAll(async () => {
    await childJobs?.close();
    await runJobs?.close();
    redis?.disconnect();
    await handoff?.close();
  });

  async function audit(taskId: string): Promise<Array<{ type: string; data?: Record<string, unknown> }>> {
    return (await redis.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r) as { type: string; taskId?: string; data?: Record<string, unknown> })
      .filter((r) => r.taskId === taskId);
  }

  /** Posts the sample request, checks the plan card and approves it. */
  async function approveFanOut(): Promise<{ thread: string; taskId: string }> {
    const posted = await client.post(request, [{ name: 'sales.csv', path: salesCsv }]);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    expect(card.html).toContain('Runs as 4 parallel workstreams, each in its own sandbox');
    for (const r of ['North', 'South', 'East', 'West']) expect(card.html).toContain(`${r} (${r.toLowerCase()})`);
    const buttons = planButtons(card.html!);
    expect((await client.action({ action: 'approve', ...buttons })).status).toBe(200);
    return { thread, taskId: buttons.taskId };
  }

  async function download(html: string, name: string): Promise<Buffer> {
    const file = links(html).find((l) => l.name === name);
    expect(file, `${name} is linked on the result card`).toBeDefined();
    const res = await fetch(new URL(file!.href, handoff.url));
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  }

  it('runs 4 workstreams in 4 sandboxes at once and merges them into one workbook', async () => {
    Object.assign(model, { rule: 'retry', barrier: 4, block: false, crash: undefined, hang: undefined });
    model.maxParallelSeen = 0;
    const { thread, taskId } = await approveFanOut();
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 240_000);
    expect(result.html).toContain('Done');
    // Each workstream's first turn waited until all four sandboxes existed at once.
    expect(model.maxParallelSeen).toBe(4);
    const book = await readXlsx(await download(result.html!, 'sales-by-region.xlsx'));
    // One sheet per region, in the order of the workstream ids.
    expect(book.sheets).toEqual(['Summary', 'East', 'North', 'South', 'West']);
    expect(book.formulas.Summary?.C2).toBe("'East'!F14");
    expect(book.formulas.North?.F14).toBe('SUM(F2:F13)');
    expect(book.charts).toHaveLength(1);

    const records = await audit(taskId);
    expect(records.filter((r) => r.type === 'workstream.started')).toHaveLength(4);
    const finished = records.filter((r) => r.type === 'workstream.finished');
    expect(finished.map((r) => r.data?.outcome)).toEqual(['done', 'done', 'done', 'done']);
    expect(records.find((r) => r.type === 'workstreams.merged')?.data).toMatchObject({ failed: [] });
    // Its Redis records expire with the task's (30 days after it ended).
    const keys = (await redis.keys(`hf:*${taskId}*`)).filter((k) => !k.startsWith('hf:audit'));
    expect(keys).toContain(`hf:workstreams:${taskId}:v1`);
    for (const key of keys) {
      const ttl = await redis.pttl(key);
      expect(ttl, key).toBeGreaterThan(0);
      expect(ttl, key).toBeLessThanOrEqual(30 * 86_400_000);
    }
    // Each child ran in its own sandbox and none is left.
    expect((await workstreamContainers()).get(taskId) ?? []).toEqual([]);
    for (const id of regions) {
      const job = await childJobs.getJob(workstreamJobId(taskId, 1, id));
      expect(await job?.getState()).toBe('completed');
    }
    // The progress card listed every workstream.
    const progress = (await client.thread(thread)).find((m) => m.html?.includes('card progress'));
    expect(progress?.html).toContain('class="workstreams"');
    expect(progress?.html).toContain('West: done');
  });

  it('Cancel during the fan-out stops all four workstreams', async () => {
    Object.assign(model, { rule: 'retry', barrier: 4, block: true, crash: undefined, hang: undefined });
    const { thread, taskId } = await approveFanOut();
    // All four sandboxes exist and every workstream is blocked in its first turn.
    for (let i = 0; i < 600 && ((await workstreamContainers()).get(taskId)?.length ?? 0) < 4; i++)
      await new Promise((r) => setTimeout(r, 200));
    expect((await workstreamContainers()).get(taskId)).toHaveLength(4);
    const cancel = await client.action({ action: 'cancel', taskId });
    expect(cancel.status).toBe(200);
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 60_000);
    expect(result.html).toContain('Cancelled');
    for (let i = 0; i < 300 && ((await workstreamContainers()).get(taskId)?.length ?? 0) > 0; i++)
      await new Promise((r) => setTimeout(r, 200));
    expect((await workstreamContainers()).get(taskId) ?? []).toEqual([]);
    for (const id of regions) {
      const job = await childJobs.getJob(workstreamJobId(taskId, 1, id));
      for (let i = 0; i < 100 && job && (await job.getState()) === 'active'; i++)
        await new Promise((r) => setTimeout(r, 200));
      expect(await job?.getState()).not.toBe('completed');
    }
    const task = JSON.parse((await redis.get(`hf:task:${taskId}`))!) as { state: string };
    expect(task.state).toBe('cancelled');
    const finished = (await audit(taskId)).filter((r) => r.type === 'workstream.finished');
    expect(finished.map((r) => r.data?.outcome)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
  });

  it('onChildFailure fail: a crashed workstream fails the task and names it', async () => {
    Object.assign(model, { rule: 'fail', barrier: 0, block: false, crash: { id: 'east', times: 9 }, hang: undefined });
    const { thread, taskId } = await approveFanOut();
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(result.html).toContain('Workstream &quot;East&quot; failed');
    expect(result.html).toContain('without delivering any file');
    expect(links(result.html!)).toEqual([]);
    const east = (await audit(taskId)).filter((r) => r.type === 'workstream.finished' && r.data?.workstream === 'east');
    expect(east.map((r) => r.data?.outcome)).toEqual(['failed']);
    expect(JSON.parse((await redis.get(`hf:task:${taskId}`))!).state).toBe('failed');
    // The others were stopped, and the run job completed once they had (no job left waiting).
    const run = await runJobs.getJob(`run-${taskId}-v1`);
    for (let i = 0; i < 300 && (await run?.getState()) !== 'completed'; i++)
      await new Promise((r) => setTimeout(r, 200));
    expect(await run?.getState()).toBe('completed');
    const others = (await audit(taskId)).filter(
      (r) => r.type === 'workstream.finished' && r.data?.workstream !== 'east',
    );
    expect(others.every((r) => r.data?.outcome === 'done' || r.data?.outcome === 'cancelled')).toBe(true);
    expect((await workstreamContainers()).get(taskId) ?? []).toEqual([]);
  });

  it('onChildFailure continue: the merge goes on without the crashed workstream', async () => {
    Object.assign(model, {
      rule: 'continue',
      barrier: 0,
      block: false,
      crash: { id: 'east', times: 9 },
      hang: undefined,
    });
    const { thread, taskId } = await approveFanOut();
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 240_000);
    expect(result.html).toContain('Done');
    const book = await readXlsx(await download(result.html!, 'sales-by-region.xlsx'));
    expect(book.sheets).toEqual(['Summary', 'North', 'South', 'West']);
    expect((await audit(taskId)).find((r) => r.type === 'workstreams.merged')?.data).toMatchObject({
      failed: ['east'],
    });
  });

  it('onChildFailure retry: a workstream that crashes once is run again and the merge has all four', async () => {
    model.firstTurns.clear();
    Object.assign(model, {
      rule: 'retry',
      barrier: 0,
      block: false,
      crash: { id: 'south', times: 1 },
      hang: undefined,
    });
    const { thread, taskId } = await approveFanOut();
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 240_000);
    expect(result.html).toContain('Done');
    expect(model.firstTurns.get('south')).toBe(2);
    const book = await readXlsx(await download(result.html!, 'sales-by-region.xlsx'));
    expect(book.sheets).toEqual(['Summary', 'East', 'North', 'South', 'West']);
    const south = (await audit(taskId)).filter(
      (r) => r.type === 'workstream.finished' && r.data?.workstream === 'south',
    );
    expect(south.map((r) => [r.data?.outcome, r.data?.retrying ?? false])).toEqual([
      ['failed', true],
      ['done', false],
    ]);
  });

  it('onChildFailure retry: a workstream that crashes twice stops the task', async () => {
    model.firstTurns.clear();
    Object.assign(model, {
      rule: 'retry',
      barrier: 0,
      block: false,
      crash: { id: 'north', times: 9 },
      hang: undefined,
    });
    const { thread } = await approveFanOut();
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(result.html).toContain('Workstream &quot;North&quot; failed twice');
    expect(model.firstTurns.get('north')).toBe(2);
  });

  it('a workstream that times out is reported, and with continue the others are merged', async () => {
    Object.assign(model, { rule: 'continue', barrier: 0, block: false, crash: undefined, hang: 'west' });
    const { thread, taskId } = await approveFanOut();
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 240_000);
    expect(result.html).toContain('Done');
    const book = await readXlsx(await download(result.html!, 'sales-by-region.xlsx'));
    expect(book.sheets).toEqual(['Summary', 'East', 'North', 'South']);
    const west = (await audit(taskId)).find((r) => r.type === 'workstream.finished' && r.data?.workstream === 'west');
    expect(west?.data).toMatchObject({ outcome: 'failed', code: 'handoff_run_timeout' });
    expect(String(west?.data?.error)).toContain('time limit');
    expect((await workstreamContainers()).get(taskId) ?? []).toEqual([]);
  });
});
