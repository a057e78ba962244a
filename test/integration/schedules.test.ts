import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaultPlanPolicy, type PlanPolicy, planHash } from '../../src/approvals/index.ts';
import type { ChatSurface, PersonInfo } from '../../src/bot/chat-surface.ts';
import { Gateway } from '../../src/bot/index.ts';
import { TickDeferred } from '../../src/bot/schedules.ts';
import type { BriefView, View } from '../../src/bot/views.ts';
import {
  type Artifact,
  type ChannelRef,
  type ConversationRef,
  ErrorCodes,
  HandoffError,
  newTask,
  type Schedule,
  type Task,
  tickTaskId,
  transition,
} from '../../src/core/index.ts';
import { latestRunAtOrBefore } from '../../src/core/schedule-rule.ts';
import { Metrics } from '../../src/observability/index.ts';
import { Queues, runJobId } from '../../src/queue/index.ts';
import {
  AuditLog,
  type EmbeddedRedis,
  LocalArtifactStore,
  ScheduleStore,
  StateStore,
  startRedisServer,
  verifyAuditInRedis,
} from '../../src/storage/index.ts';
import { testPlan } from '../helpers/fixtures.ts';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
const ana = { id: 'u-ana', name: 'Ana' };
const ben = { id: 'u-ben', name: 'Ben' };

/** A chat surface that remembers what it was asked to do, shared by every "bot" in a test. */
class RecordingSurface implements ChatSurface {
  readonly name = 'web' as const;
  topLevel: Array<{ channel: string; ref: string; view: View }> = [];
  threaded: Array<{ conversation: ConversationRef; view: View }> = [];
  updates: Array<{ ref: string; view: View }> = [];
  dms: Array<{ personId: string; view: View }> = [];
  people = new Map<string, PersonInfo>();
  refusing = new Set<string>();
  private seq = 0;

  async post(conversation: ConversationRef, view: View): Promise<string> {
    this.threaded.push({ conversation, view });
    return `m${++this.seq}`;
  }
  async update(_c: ConversationRef, ref: string, view: View): Promise<void> {
    this.updates.push({ ref, view });
  }
  async postToChannel(target: ChannelRef, view: View): Promise<string> {
    if (this.refusing.has(target.channel))
      throw new HandoffError(ErrorCodes.channelUnavailable, 'the bot is not in this channel');
    const ref = `top${++this.seq}`;
    this.topLevel.push({ channel: target.channel, ref, view });
    return ref;
  }
  async notifyPerson(_t: ChannelRef, personId: string, view: View): Promise<void> {
    this.dms.push({ personId, view });
  }
  async person(_t: ChannelRef, personId: string): Promise<PersonInfo | undefined> {
    return this.people.get(personId);
  }
  /** The last view a brief's message was edited to. */
  lastBrief(ref: string): BriefView | undefined {
    return this.updates.filter((u) => u.ref === ref).at(-1)?.view as BriefView | undefined;
  }
}

describe('scheduled briefs against real Redis and BullMQ job schedulers', () => {
  let server: EmbeddedRedis;
  let dir: string;
  let surface: RecordingSurface;
  const connections: Redis[] = [];
  const queuesList: Queues[] = [];
  let prefix: string;
  let run = 0;

  /** One "bot": its own connections, stores, queues and gateway over the shared Redis. */
  function bot(policy: PlanPolicy = defaultPlanPolicy(false)) {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    connections.push(redis);
    const queues = new Queues({ connection: redis, prefix });
    queuesList.push(queues);
    const state = new StateStore(redis);
    const schedules = new ScheduleStore(redis, 86_400_000);
    const store = new LocalArtifactStore({
      root: join(dir, 'artifacts'),
      signingSecret: 'x'.repeat(32),
      publicUrl: 'http://127.0.0.1:1',
    });
    const gateway = new Gateway({
      state,
      schedules,
      queues,
      audit: new AuditLog(redis),
      store,
      logger,
      metrics: new Metrics(),
      policy,
      limits: { maxUploadBytes: 1024 * 1024, maxFilesPerRequest: 5, maxRequestChars: 4000, downloadTtlMs: 60_000 },
      demo: false,
      surfaces: [surface],
    });
    return { redis, queues, state, schedules, store, gateway };
  }

  /** An active schedule saved as approval would save it, with its clock. */
  async function activeSchedule(b: ReturnType<typeof bot>, over: Partial<Schedule> = {}): Promise<Schedule> {
    const id = `s_test${++run}`;
    const plan = testPlan({ taskId: `t_src${run}`, version: 1, deliverables: [{ name: 'brief.md', type: 'md' }] });
    const now = new Date(Date.now() - 3_600_000).toISOString();
    const schedule: Schedule = {
      id,
      createdAt: now,
      updatedAt: now,
      owner: ana,
      target: { surface: 'web', channel: 'sales' },
      request: 'a sales brief from the attached CSV',
      inputs: [],
      timing: {
        pattern: '* * * * *',
        tz: 'Europe/Berlin',
        tzSource: 'given',
        words: 'every minute',
        text: 'every minute',
        catchUp: 'latest',
        catchUpWindowMs: 6 * 3_600_000,
      },
      plan,
      planHash: planHash(plan),
      approvedBy: [ben],
      approvedAt: now,
      sourceTaskId: `t_src${run}`,
      status: 'active',
      failuresInARow: 0,
      lastDigests: [],
      demo: false,
      ...over,
    };
    await b.schedules.create(schedule);
    if (schedule.status === 'active')
      await b.queues.upsertScheduleClock(schedule.id, schedule.timing.pattern, schedule.timing.tz);
    return schedule;
  }

  /** A clock tick as BullMQ hands it to the worker: the time is the job's, not the data's. */
  function clockJob(scheduleId: string, atMs: number) {
    return { id: `repeat:${scheduleId}:${atMs}`, data: { scheduleId }, opts: { prevMillis: atMs } };
  }

  /** Ends a tick's task as the runner would, then renders its brief. */
  async function finishTick(
    b: ReturnType<typeof bot>,
    taskId: string,
    outcome: 'succeeded' | 'failed',
    content = '# Sales brief\n\n- Total 154,049.00\n',
  ): Promise<Task> {
    const artifacts: Artifact[] = [];
    if (outcome === 'succeeded') {
      const key = `tasks/${taskId}/out/brief.md`;
      const put = await b.store.put(key, Readable.from([Buffer.from(content)]), { mediaType: 'text/markdown' });
      artifacts.push({
        name: 'brief.md',
        key,
        mediaType: 'text/markdown',
        size: put.size,
        sha256: put.sha256,
        createdAt: new Date().toISOString(),
      });
    }
    await b.state.updateTask(taskId, (t) => transition(t, 'running', new Date()));
    const { after } = await b.state.updateTask(taskId, (t) =>
      transition(
        t,
        outcome,
        new Date(),
        outcome === 'succeeded'
          ? { artifacts, resultSummary: 'Total revenue 154,049.00; East leads.' }
          : { failure: { code: ErrorCodes.sandboxUnavailable, message: 'no sandbox could be started' } },
      ),
    );
    await b.gateway.handleEvent({ type: 'result', taskId, runId: after.runId ?? `r_${taskId}v1` });
    return after;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-schedules-'));
    server = await startRedisServer({ dir: join(dir, 'redis') });
  });
  afterAll(async () => {
    await Promise.allSettled(queuesList.map((q) => q.close()));
    for (const c of connections) c.disconnect();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    // Each test starts from an empty Redis: schedules are global records.
    const admin = new Redis(server.url);
    await admin.flushall();
    admin.disconnect();
    surface = new RecordingSurface();
    prefix = `hfq-sched-${process.pid}-${++run}`;
  });

  it('approving a proposed schedule saves it and starts one clock; the plan card shows the schedule', async () => {
    const b = bot();
    const conversation = { surface: 'web' as const, channel: 'sales', thread: 'm-root' };
    const task = await b.gateway.schedules.propose({
      conversation,
      requester: ana,
      when: 'every weekday at 8:30 Europe/Berlin',
      text: 'a sales brief from the attached CSV',
      files: [{ name: 'sales.csv', size: 12, body: Buffer.from('region,x\nA,1\n') }],
    });
    expect(task.schedule?.timing).toMatchObject({ pattern: '30 8 * * 1-5', tz: 'Europe/Berlin', tzSource: 'given' });
    expect(await b.schedules.countInChannel({ surface: 'web', channel: 'sales' })).toBe(0);
    // The planner's part, done by hand: a plan, then the card.
    const plan = testPlan({ taskId: task.id, version: 1, deliverables: [{ name: 'brief.md', type: 'md' }] });
    await b.state.savePlan(plan);
    await b.state.updateTask(task.id, (t) => ({ ...transition(t, 'planning', new Date()), planVersion: 1 }));
    await b.state.updateTask(task.id, (t) => transition(t, 'awaiting_approval', new Date()));
    await b.gateway.handleEvent({ type: 'plan.ready', taskId: task.id, version: 1 });
    const card = surface.threaded.find((p) => p.view.kind === 'plan')!.view;
    expect(card.kind === 'plan' && card.schedule).toMatchObject({
      words: expect.stringContaining('08:30'),
      tz: 'Europe/Berlin',
      owner: 'Ana',
      target: 'sales',
    });
    expect(card.kind === 'plan' && card.schedule?.nextRuns).toHaveLength(3);

    const said = await b.gateway.decide({
      taskId: task.id,
      planVersion: 1,
      planHash: planHash(plan),
      by: ben,
      outcome: 'approved',
    });
    expect(said).toMatch(/schedule s_[\w-]+ is active/);
    const [saved] = await b.schedules.inChannel({ surface: 'web', channel: 'sales' });
    expect(saved).toMatchObject({ status: 'active', owner: ana, approvedBy: [ben], request: task.request });
    expect(saved!.inputs[0]!.key).toMatch(new RegExp(`^schedules/${saved!.id}/in/`));
    expect((await b.state.requireTask(task.id)).state).toBe('succeeded');
    // Nothing ran: a standing plan's approval queues no run.
    expect(await b.queues.run.getJobCounts()).toMatchObject({ waiting: 0, delayed: 0 });
    const clocks = await b.queues.scheduleClockIds();
    expect(clocks).toEqual([{ id: saved!.id, pattern: '30 8 * * 1-5', tz: 'Europe/Berlin' }]);
    // A second approve click is refused and makes no second schedule or clock.
    await expect(
      b.gateway.decide({ taskId: task.id, planVersion: 1, planHash: planHash(plan), by: ben, outcome: 'approved' }),
    ).rejects.toThrow();
    expect(await b.queues.scheduleClockIds()).toHaveLength(1);
    const audit = (await b.redis.lrange('hf:audit', 0, -1)).map(
      (r) => JSON.parse(r) as { type: string; data?: Record<string, unknown> },
    );
    expect(audit.find((r) => r.type === 'schedule.created')?.data).toMatchObject({
      rule: '30 8 * * 1-5',
      tz: 'Europe/Berlin',
      target: 'web:sales',
    });
    expect(audit.find((r) => r.type === 'schedule.approved')?.data).toMatchObject({
      scheduleId: saved!.id,
      approvedBy: [ben.id],
    });
  });

  it('a click on one surface finds no task of another (Schedule…, approve, cancel, changes)', async () => {
    const b = bot();
    const slackTask = {
      ...newTask(
        {
          id: 't_slackonly',
          conversation: { surface: 'slack' as const, channel: 'C1', thread: '1.1' },
          requester: { id: 'UANA', name: 'Ana' },
          request: 'a brief',
          inputs: [],
          demo: false,
        },
        new Date(),
      ),
    };
    await b.state.createTask(slackTask);
    const carl = { id: 'web:carl', name: 'Carl' };
    await expect(
      b.gateway.schedules.proposeFrom({ taskId: slackTask.id, when: 'every day at 9', by: carl, surface: 'web' }),
    ).rejects.toThrow(/no task t_slackonly/);
    await expect(
      b.gateway.decide({
        taskId: slackTask.id,
        planVersion: 1,
        planHash: 'x',
        by: carl,
        outcome: 'approved',
        surface: 'web',
      }),
    ).rejects.toThrow(/no task t_slackonly/);
    await expect(b.gateway.cancel(slackTask.id, carl, 'web')).rejects.toThrow(/no task t_slackonly/);
    await expect(
      b.gateway.requestChanges({ taskId: slackTask.id, planVersion: 1, by: carl, text: 'more', surface: 'web' }),
    ).rejects.toThrow(/no task t_slackonly/);
    await expect(
      b.gateway.decideAction({ taskId: slackTask.id, approvalId: 'a', by: carl, outcome: 'approved', surface: 'web' }),
    ).rejects.toThrow(/no task t_slackonly/);
    expect((await b.state.requireTask(slackTask.id)).state).toBe('requested');
    // A schedule is changed only from its own surface, and from its own channel's panel.
    const s = await activeSchedule(b);
    await expect(
      b.gateway.schedules.act({ scheduleId: s.id, action: 'pause', by: ana, from: { surface: 'slack' } }),
    ).rejects.toThrow(/there is no schedule/);
    await expect(
      b.gateway.schedules.act({
        scheduleId: s.id,
        action: 'pause',
        by: ana,
        from: { surface: 'web', channel: 'general' },
      }),
    ).rejects.toThrow(/#general has no schedule/);
    expect((await b.schedules.get(s.id))!.status).toBe('active');
  });

  it('refuses rules it cannot read, zones it does not know and rules more frequent than the channel allows', async () => {
    const b = bot({
      ...defaultPlanPolicy(false),
      schedules: { create: 'anyone', minIntervalMs: 15 * 60_000, maxPerChannel: 2, connectors: false },
    });
    const propose = (when: string) =>
      b.gateway.schedules.propose({
        conversation: { surface: 'web', channel: 'sales', thread: 'm1' },
        requester: ana,
        when,
        text: 'a brief',
        files: [],
      });
    await expect(propose('whenever it suits you')).rejects.toThrow(
      /could not read "whenever it suits you".*Try, for example: "/,
    );
    await expect(propose('every weekday at 8:30 Mars/Olympus')).rejects.toThrow(/Mars\/Olympus/);
    await expect(propose('every 5 minutes')).rejects.toThrow(/at most one run every 15 min/);
    expect(await b.state.taskIdsOf('web', ana.id, 10)).toEqual([]);
    // The channel's maximum.
    await activeSchedule(b);
    await activeSchedule(b);
    await expect(propose('every day at 9')).rejects.toThrow(/already has 2 schedules/);
  });

  it('a tick posts one top-level brief and queues one run, however many bots handle it', async () => {
    const bots = [bot(), bot(), bot()];
    const s = await activeSchedule(bots[0]!);
    const at = latestRunAtOrBefore(s.timing.pattern, s.timing.tz, new Date())!.getTime();
    // The same tick, handed to three bots at once, twice each (a retried job).
    await Promise.all(
      bots
        .flatMap((b) => [b.gateway.schedules.tick(clockJob(s.id, at)), b.gateway.schedules.tick(clockJob(s.id, at))])
        .map((p) => p.catch((e) => e)),
    );
    await Promise.all(bots.map((b) => b.gateway.schedules.tick(clockJob(s.id, at))));
    expect(surface.topLevel).toHaveLength(1);
    const taskId = tickTaskId(s.id, at);
    const task = await bots[0]!.state.requireTask(taskId);
    expect(task).toMatchObject({ state: 'queued', requester: ana, brief: { scheduleId: s.id, manual: false } });
    expect(task.conversation).toEqual({ surface: 'web', channel: 'sales', thread: surface.topLevel[0]!.ref });
    expect(task.decision).toMatchObject({ outcome: 'approved', by: ben });
    const job = await bots[0]!.queues.run.getJob(runJobId(taskId, 1));
    expect(job?.data).toMatchObject({ taskId, planVersion: 1 });
    expect(await bots[0]!.queues.run.getJobCounts('waiting', 'delayed')).toEqual({ waiting: 1, delayed: 0 });
    // Replies under the brief reach the tick's task.
    expect(await bots[0]!.state.taskForThread('web', 'sales', surface.topLevel[0]!.ref)).toBe(taskId);
  });

  it('the brief replaces the message that opened it; the same files again say there is nothing new', async () => {
    const b = bot();
    const s = await activeSchedule(b);
    const first = Date.now() - 120_000;
    await b.gateway.schedules.tick({
      id: 'run-now-1',
      data: { scheduleId: s.id, scheduledAtMs: first, manual: true },
      opts: {},
    });
    const t1 = tickTaskId(s.id, first);
    await finishTick(b, t1, 'succeeded');
    const ref1 = surface.topLevel[0]!.ref;
    const brief = surface.lastBrief(ref1)!;
    expect(brief).toMatchObject({
      kind: 'brief',
      state: 'posted',
      title: 'Sales brief',
      manual: true,
      summary: expect.stringContaining('154,049'),
    });
    expect(brief.body).toContain('Total 154,049.00');
    expect(brief.files.map((f) => f.name)).toEqual(['brief.md']);
    // A result event delivered twice changes nothing more.
    await b.gateway.handleEvent({ type: 'result', taskId: t1, runId: 'r' });
    expect((await b.schedules.get(s.id))!.lastTick).toMatchObject({ taskId: t1, outcome: 'posted' });

    const second = Date.now() - 60_000;
    await b.gateway.schedules.tick({
      id: 'run-now-2',
      data: { scheduleId: s.id, scheduledAtMs: second, manual: true },
      opts: {},
    });
    await finishTick(b, tickTaskId(s.id, second), 'succeeded');
    expect(surface.lastBrief(surface.topLevel[1]!.ref)).toMatchObject({ state: 'nothing_new' });
    expect((await b.schedules.get(s.id))!.lastTick?.outcome).toBe('nothing_new');
    // Each tick: when it was due, when it started, its post; then its outcome.
    const audit = (await b.redis.lrange('hf:audit', 0, -1)).map(
      (r) => JSON.parse(r) as { type: string; taskId?: string; data?: Record<string, unknown> },
    );
    expect(audit.filter((r) => r.type === 'schedule.tick').map((r) => r.data)).toEqual([
      expect.objectContaining({
        scheduleId: s.id,
        scheduledAt: new Date(first).toISOString(),
        manual: true,
        postRef: ref1,
        startedAt: expect.any(String),
      }),
      expect.objectContaining({ scheduleId: s.id, scheduledAt: new Date(second).toISOString() }),
    ]);
    expect(audit.filter((r) => r.type === 'schedule.tick_result').map((r) => r.data?.outcome)).toEqual([
      'posted',
      'nothing_new',
    ]);
  });

  it('a failed tick tells the channel and the owner; the third in a row pauses the schedule and stops its clock', async () => {
    const b = bot();
    const s = await activeSchedule(b);
    for (let i = 0; i < 3; i++) {
      const at = Date.now() - (10 - i) * 60_000;
      await b.gateway.schedules.tick({
        id: `n${i}`,
        data: { scheduleId: s.id, scheduledAtMs: at, manual: true },
        opts: {},
      });
      await finishTick(b, tickTaskId(s.id, at), 'failed');
      const notice = surface.lastBrief(surface.topLevel[i]!.ref)!;
      expect(notice).toMatchObject({
        state: 'failed',
        reason: 'no sandbox could be started',
        advice: expect.stringContaining('handoff doctor'),
      });
      expect(surface.dms).toHaveLength(i + 1);
      expect(surface.dms[i]!.personId).toBe(ana.id);
      if (i < 2) expect(notice.paused).toBeUndefined();
    }
    expect(surface.lastBrief(surface.topLevel[2]!.ref)!.paused).toMatch(/3 failed briefs in a row/);
    expect(JSON.stringify(surface.dms[2]!.view)).toMatch(/now paused after 3 failures/);
    const after = (await b.schedules.get(s.id))!;
    expect(after).toMatchObject({ status: 'paused', failuresInARow: 3 });
    expect(await b.queues.scheduleClockIds()).toEqual([]);
    // A paused schedule's clock ticks are ignored.
    await b.gateway.schedules.tick(
      clockJob(s.id, latestRunAtOrBefore(s.timing.pattern, s.timing.tz, new Date())!.getTime()),
    );
    expect(surface.topLevel).toHaveLength(3);
  });

  it('a post another bot claimed waits for it; a claim left by a process that died is never posted twice', async () => {
    const b = bot();
    const s = await activeSchedule(b);
    const at = latestRunAtOrBefore(s.timing.pattern, s.timing.tz, new Date())!.getTime();
    const taskId = tickTaskId(s.id, at);
    expect(await b.schedules.claimPost(taskId)).toEqual({ state: 'new' });
    const deferred = await b.gateway.schedules.tick(clockJob(s.id, at)).catch((e) => e);
    expect(deferred).toBeInstanceOf(TickDeferred);
    expect((deferred as TickDeferred).untilMs).toBeGreaterThan(Date.now() + 60_000);
    expect(surface.topLevel).toHaveLength(0);
    // The claim is old: whoever made it stopped between sending and recording.
    await b.redis.set(`hf:brief:post:${taskId}`, JSON.stringify({ since: Date.now() - 10 * 60_000 }));
    await b.gateway.schedules.tick(clockJob(s.id, at));
    expect(surface.topLevel).toHaveLength(0);
    expect((await b.schedules.get(s.id))!.lastTick).toMatchObject({
      taskId,
      outcome: 'failed',
      message: expect.stringContaining('may be missing'),
    });
    const types = (await b.redis.lrange('hf:audit', 0, -1)).map((r) => (JSON.parse(r) as { type: string }).type);
    expect(types).toContain('schedule.post_unknown');
  });

  it('a new time keeps the zone and the catch-up rule unless the new rule names them', async () => {
    const b = bot();
    const s = await activeSchedule(b, {
      timing: {
        pattern: '0 9 * * *',
        tz: 'Asia/Tokyo',
        tzSource: 'channel',
        words: 'every day at 09:00',
        text: 'every day at 9',
        catchUp: 'none',
        catchUpWindowMs: 3_600_000,
      },
    });
    await b.gateway.schedules.act({ scheduleId: s.id, action: 'edit', by: ana, when: 'every day at 7' });
    expect((await b.schedules.get(s.id))!.timing).toMatchObject({
      pattern: '0 7 * * *',
      tz: 'Asia/Tokyo',
      tzSource: 'channel',
      catchUp: 'none',
      catchUpWindowMs: 3_600_000,
    });
    await b.gateway.schedules.act({
      scheduleId: s.id,
      action: 'edit',
      by: ana,
      when: 'every day at 8 UTC, catch up within 2h',
    });
    expect((await b.schedules.get(s.id))!.timing).toMatchObject({
      tz: 'UTC',
      tzSource: 'given',
      catchUp: 'latest',
      catchUpWindowMs: 7_200_000,
    });
  });

  it("a tick over the channel's monthly cap fails with that reason and runs nothing", async () => {
    const b = bot({ ...defaultPlanPolicy(false), budget: { monthlyCostCapUsd: 1 } });
    const s = await activeSchedule(b);
    await b.state.addChannelCost({ surface: 'web', channel: 'sales' }, 1.5, new Date());
    const at = latestRunAtOrBefore(s.timing.pattern, s.timing.tz, new Date())!.getTime();
    await b.gateway.schedules.tick(clockJob(s.id, at));
    const task = await b.state.requireTask(tickTaskId(s.id, at));
    expect(task).toMatchObject({ state: 'failed', failure: { code: ErrorCodes.budgetExceeded } });
    expect(surface.lastBrief(surface.topLevel[0]!.ref)).toMatchObject({
      state: 'failed',
      reason: expect.stringContaining('$1.50 of its $1.00 monthly budget'),
      advice: expect.stringContaining('monthly cap'),
    });
    expect(surface.dms.map((d) => d.personId)).toEqual([ana.id]);
    expect(await b.queues.run.getJobCounts('waiting', 'delayed')).toEqual({ waiting: 0, delayed: 0 });
  });

  it('a channel that refuses the bot pauses the schedule and tells the owner directly; an owner who left pauses it and tells the approvers', async () => {
    const b = bot();
    const s = await activeSchedule(b);
    surface.refusing.add('sales');
    const at = latestRunAtOrBefore(s.timing.pattern, s.timing.tz, new Date())!.getTime();
    await b.gateway.schedules.tick(clockJob(s.id, at));
    expect(surface.topLevel).toHaveLength(0);
    expect((await b.schedules.get(s.id))!).toMatchObject({
      status: 'paused',
      pausedReason: expect.stringContaining('cannot post in sales'),
    });
    expect(surface.dms.map((d) => d.personId)).toEqual([ana.id]);
    expect(await b.state.getTask(tickTaskId(s.id, at))).toBeUndefined();

    surface.refusing.clear();
    const s2 = await activeSchedule(b);
    surface.people.set(ana.id, { active: false });
    await b.gateway.schedules.tick(clockJob(s2.id, at));
    expect((await b.schedules.get(s2.id))!).toMatchObject({
      status: 'paused',
      pausedReason: expect.stringContaining('no longer in the workspace'),
    });
    expect(surface.topLevel).toHaveLength(1);
    expect(JSON.stringify(surface.topLevel[0]!.view)).toMatch(/owner Ana has left/);
    // An approver resuming it becomes its owner.
    expect(await b.gateway.schedules.act({ scheduleId: s2.id, action: 'resume', by: ben })).toMatch(
      /with Ben as its owner/,
    );
    expect((await b.schedules.get(s2.id))!).toMatchObject({ status: 'active', owner: ben });
  });

  it('a late clock tick runs once as the most recent missed tick; past the window, or with catch-up off, it is recorded as missed', async () => {
    const b = bot();
    // A daily rule whose latest run was two hours ago: every tick of it now is late.
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    const pattern = `${twoHoursAgo.getUTCMinutes()} ${twoHoursAgo.getUTCHours()} * * *`;
    const daily = {
      pattern,
      tz: 'UTC',
      tzSource: 'given' as const,
      words: 'every day',
      text: 'every day',
      catchUp: 'latest' as const,
      catchUpWindowMs: 6 * 3_600_000,
    };
    const s = await activeSchedule(b, { timing: daily });
    const latest = latestRunAtOrBefore(pattern, 'UTC', new Date())!.getTime();
    expect(Date.now() - latest).toBeGreaterThan(3_600_000);
    // The clock's job for the tick a day before, taken only now (Handoff was down since).
    await b.gateway.schedules.tick(clockJob(s.id, latest - 86_400_000));
    expect(surface.topLevel).toHaveLength(1);
    const task = await b.state.requireTask(tickTaskId(s.id, latest));
    expect(task.brief?.scheduledAt).toBe(new Date(latest).toISOString());
    expect(await b.state.getTask(tickTaskId(s.id, latest - 86_400_000))).toBeUndefined();
    expect((surface.topLevel[0]!.view as BriefView).late).toMatch(/^2 h( \d+ min)? late: Handoff was not running/);
    // Taken again (a second bot, a retry): still one brief.
    await b.gateway.schedules.tick(clockJob(s.id, latest - 86_400_000));
    expect(surface.topLevel).toHaveLength(1);

    const none = await activeSchedule(b, { timing: { ...daily, catchUp: 'none' } });
    await b.gateway.schedules.tick(clockJob(none.id, latest));
    const narrow = await activeSchedule(b, { timing: { ...daily, catchUpWindowMs: 3_600_000 } });
    await b.gateway.schedules.tick(clockJob(narrow.id, latest));
    expect(surface.topLevel).toHaveLength(1);
    expect((await b.schedules.get(none.id))!.lastTick).toMatchObject({ outcome: 'missed' });
    expect((await b.schedules.get(narrow.id))!.lastTick).toMatchObject({ outcome: 'missed' });
    const audit = (await b.redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r) as { type: string });
    expect(audit.filter((r) => r.type === 'schedule.tick_missed')).toHaveLength(2);
  });

  it('reconciling makes the clocks match the records, from two bots at once, and catches up a missed tick once', async () => {
    const [a, c] = [bot(), bot()];
    const kept = await activeSchedule(a);
    const paused = await activeSchedule(a, { status: 'paused' });
    // Clocks the records no longer back: a deleted schedule's, a paused one's, a stranger's.
    const gone = await activeSchedule(a);
    await a.schedules.update(gone.id, (s) => ({ ...s, status: 'deleted' }));
    await a.queues.upsertScheduleClock(paused.id, '* * * * *', 'UTC');
    await a.queues.upsertScheduleClock('s_unknown', '* * * * *', 'UTC');
    // A schedule whose clock was lost (Redis restored from an old snapshot).
    const lost = await activeSchedule(a);
    await a.queues.removeScheduleClock(lost.id);
    const results = await Promise.all([a.gateway.schedules.reconcile(), c.gateway.schedules.reconcile()]);
    expect(results.map((r) => r.clocks)).toEqual([2, 2]);
    const ids = (await a.queues.scheduleClockIds()).map((x) => x.id).sort();
    expect(ids).toEqual([kept.id, lost.id].sort());

    // Catch-up: an hourly schedule approved long ago whose last tick was missed.
    const q = await activeSchedule(a, {
      timing: {
        pattern: '0 * * * *',
        tz: 'UTC',
        tzSource: 'given',
        words: 'every hour',
        text: 'every hour',
        catchUp: 'latest',
        catchUpWindowMs: 6 * 3_600_000,
      },
      approvedAt: new Date(Date.now() - 86_400_000).toISOString(),
    });
    const latest = latestRunAtOrBefore('0 * * * *', 'UTC', new Date())!.getTime();
    const now = latest + 5 * 60_000;
    const [r1, r2] = await Promise.all([a.gateway.schedules.reconcile(now), c.gateway.schedules.reconcile(now)]);
    expect(r1.caughtUp + r2.caughtUp).toBeGreaterThanOrEqual(1);
    const ticks = (await a.queues.schedule.getJobs(['waiting', 'delayed', 'prioritized'])).filter(
      (j) => j.data.scheduleId === q.id && j.data.scheduledAtMs !== undefined,
    );
    expect(ticks.map((j) => j.data.scheduledAtMs)).toEqual([latest]);
  });

  it('pause, resume, run now, edit and delete: owner and approvers only; a new time only by the owner', async () => {
    const policy: PlanPolicy = { ...defaultPlanPolicy(false), approvers: [ben.id] };
    const b = bot(policy);
    const inputKey = `schedules/s_test${run + 1}/in/1-sales.csv`;
    const put = await b.store.put(inputKey, Readable.from([Buffer.from('region,x\nA,1\n')]), { mediaType: 'text/csv' });
    const s = await activeSchedule(b, {
      inputs: [{ name: 'sales.csv', mediaType: 'text/csv', size: put.size, sha256: put.sha256, key: inputKey }],
    });
    expect(s.inputs[0]!.key).toBe(inputKey);
    const carl = { id: 'u-carl', name: 'Carl' };
    await expect(b.gateway.schedules.act({ scheduleId: s.id, action: 'pause', by: carl })).rejects.toThrow(
      /only the schedule's owner \(Ana\) or an approver/,
    );
    expect(await b.gateway.schedules.act({ scheduleId: s.id, action: 'pause', by: ben })).toMatch(/^Paused/);
    expect(await b.queues.scheduleClockIds()).toEqual([]);
    expect(await b.gateway.schedules.act({ scheduleId: s.id, action: 'resume', by: ana })).toMatch(
      /^Resumed: next run/,
    );
    expect((await b.queues.scheduleClockIds()).map((x) => x.id)).toEqual([s.id]);
    await expect(
      b.gateway.schedules.act({ scheduleId: s.id, action: 'edit', by: ben, when: 'every day at 7' }),
    ).rejects.toThrow(/only the schedule's owner \(Ana\) may change its time/);
    expect(
      await b.gateway.schedules.act({ scheduleId: s.id, action: 'edit', by: ana, when: 'every day at 7' }),
    ).toMatch(/^Changed: now every day at 07:00/);
    expect(await b.queues.scheduleClockIds()).toEqual([{ id: s.id, pattern: '0 7 * * *', tz: 'Europe/Berlin' }]);
    expect(await b.gateway.schedules.act({ scheduleId: s.id, action: 'run_now', by: ana })).toMatch(/^Running now/);
    expect(
      (await b.queues.schedule.getJobs(['waiting'])).some((j) => j.data.manual && j.data.scheduleId === s.id),
    ).toBe(true);
    expect(await b.gateway.schedules.act({ scheduleId: s.id, action: 'delete', by: ben })).toMatch(/^Deleted/);
    expect(await b.queues.scheduleClockIds()).toEqual([]);
    expect(await b.schedules.inChannel({ surface: 'web', channel: 'sales' })).toEqual([]);
    expect(await b.store.exists(inputKey)).toBe(false);
    await expect(b.gateway.schedules.act({ scheduleId: s.id, action: 'resume', by: ana })).rejects.toThrow(
      /there is no schedule/,
    );
    // Every change is in the audit trail, and the trail verifies.
    const audit = await b.redis.lrange('hf:audit', 0, -1);
    const types = audit.map((r) => (JSON.parse(r) as { type: string }).type);
    for (const t of ['schedule.paused', 'schedule.resumed', 'schedule.edited', 'schedule.run_now', 'schedule.deleted'])
      expect(types).toContain(t);
    expect((await verifyAuditInRedis(b.redis)).ok).toBe(true);
  });
});
