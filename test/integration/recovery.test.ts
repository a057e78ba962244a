import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { newTask, transition } from '../../src/core/index.ts';
import { queueNames, runJobId } from '../../src/queue/index.ts';
import { type EmbeddedRedis, StateStore, startRedisServer } from '../../src/storage/index.ts';
import { type FakeAnthropicServer, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { freePort } from '../helpers/cluster.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { call, finishDoneMd as finishing, doneMdPlan as plan } from '../helpers/model-scripts.ts';

describeDocker('runs survive a Redis outage, lost jobs and stranded tasks', () => {
  let model: FakeAnthropicServer | undefined;
  let handoff: TestHandoff | undefined;
  let redisServer: EmbeddedRedis | undefined;
  const dirs: string[] = [];

  afterEach(async () => {
    await handoff?.close();
    await redisServer?.stop();
    await model?.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
    handoff = undefined;
    redisServer = undefined;
    model = undefined;
  });

  it('a 20-second Redis outage in the middle of a run delays it; the run then finishes, once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-outage-'));
    dirs.push(dir);
    const port = await freePort();
    redisServer = await startRedisServer({ dir: join(dir, 'redis'), port });
    model = await startFakeAnthropic({ apiKey: 'sk-ant-test-key' });
    model.enqueue(plan, call('run_command', { command: 'sleep 25; echo slept', step: 1 }), ...finishing);
    handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test-key', ANTHROPIC_BASE_URL: model.url, REDIS_URL: redisServer.url },
      dataDir: join(dir, 'data'),
      sweepIntervalMs: 3000,
    });
    const ana = new ConsoleClient(handoff.url);
    const posted = await ana.post('@handoff write done.md');
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const { taskId } = planButtons(card.html!);
    await ana.action({ action: 'approve', ...planButtons(card.html!) });
    await ana.waitForCard(thread, (h) => h.includes('sleep 25'), 60_000);

    // Redis goes away for 20 s while the command runs, and comes back with its AOF.
    await redisServer.stop();
    await new Promise((r) => setTimeout(r, 20_000));
    redisServer = await startRedisServer({ dir: join(dir, 'redis'), port });

    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    expect(result.html).toContain('Done');
    const redis = new Redis(redisServer.url);
    try {
      const records = (await redis.lrange('hf:audit', 0, -1))
        .map((r) => JSON.parse(r))
        .filter((r) => r.taskId === taskId);
      expect(records.filter((r) => r.type === 'run.started')).toHaveLength(1);
      expect(records.filter((r) => r.type === 'run.succeeded')).toHaveLength(1);
      // Each call the model made was run (and recorded) once.
      const ids = records.filter((r) => r.type === 'tool.call').map((r) => r.data.id);
      expect(new Set(ids).size).toBe(ids.length);
    } finally {
      redis.disconnect();
    }
  }, 240_000);

  it('a run whose job was lost is put back on the queue by the reconciler and resumes', async () => {
    model = await startFakeAnthropic({ apiKey: 'sk-ant-test-key' });
    model.enqueue(plan, call('delete_file', { path: '/workspace/in/notes.md', step: 1 }), ...finishing);
    handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test-key', ANTHROPIC_BASE_URL: model.url },
      sweepIntervalMs: 2000,
    });
    const ana = new ConsoleClient(handoff.url);
    const posted = await ana.post('@handoff write done.md', [{ name: 'notes.md', content: Buffer.from('x\n') }]);
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const { taskId } = planButtons(card.html!);
    await ana.action({ action: 'approve', ...planButtons(card.html!) });
    const approval = await ana.waitForCard(thread, (h) => h.includes('card approval'), 60_000);

    // The parked job disappears (a Redis restore from an old snapshot, an operator's mistake).
    const queue = new Queue(queueNames.run, { connection: { url: handoff.redisUrl }, prefix: 'hfq' });
    await (await queue.getJob(runJobId(taskId, 1)))!.remove();
    await queue.close();
    // The task's clock must look settled to the reconciler.
    const redis = new Redis(handoff.redisUrl);
    const raw = JSON.parse((await redis.get(`hf:task:${taskId}`))!);
    raw.updatedAt = new Date(Date.now() - 60_000).toISOString();
    await redis.set(`hf:task:${taskId}`, JSON.stringify(raw), 'KEEPTTL');

    const approvalId = /data-approval="([^"]+)"/.exec(approval.html!)![1]!;
    expect((await ana.action({ action: 'approve-action', taskId, approvalId })).status).toBe(200);
    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 90_000);
    expect(result.html).toContain('Done');
    const types = (await redis.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r))
      .filter((r) => r.taskId === taskId)
      .map((r) => r.type);
    redis.disconnect();
    expect(types).toContain('task.requeued');
  }, 180_000);

  it('Cancel ends a task that says it is running when no runner holds its run', async () => {
    handoff = await startDevHandoff();
    const redis = new Redis(handoff.redisUrl);
    const state = new StateStore(redis);
    const thread = 'm_stranded1';
    let task = newTask(
      {
        id: 't_stranded1',
        conversation: { surface: 'web', channel: 'general', thread },
        requester: { id: 'web:ana', name: 'Ana' },
        request: 'something',
        inputs: [],
        demo: true,
      },
      new Date(),
    );
    task = transition(
      transition(transition(task, 'planning', new Date()), 'awaiting_approval', new Date(), { planVersion: 1 }),
      'queued',
      new Date(),
    );
    task = transition(task, 'running', new Date(), { runId: 'r_stranded1v1' });
    await state.createTask(task);
    await state.linkThread('web', 'general', thread, task.id);

    const ana = new ConsoleClient(handoff.url, 'Ana');
    const res = await ana.action({ action: 'cancel', taskId: task.id });
    expect(res.status).toBe(200);
    expect(res.body.message).toBe('Cancelled.');
    expect((await state.getTask(task.id))?.state).toBe('cancelled');
    redis.disconnect();
  });
});
