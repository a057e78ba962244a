import type { Job } from 'bullmq';
import { defaultSchedulePolicy, type PlanPolicy, planHash, type SchedulePolicy } from '../approvals/index.ts';
import {
  type CatchUp,
  type ChannelRef,
  type ConversationRef,
  ErrorCodes,
  formatRunTime,
  HandoffError,
  type Identity,
  isTerminal,
  latestRunAtOrBefore,
  maxFailuresInARow,
  newTask,
  nextRuns,
  type Plan,
  parseScheduleRule,
  resolveTimeZone,
  type Schedule,
  type ScheduleDraft,
  type ScheduleTiming,
  type StoredFile,
  smallestIntervalMs,
  type Task,
  type TickOutcome,
  tickTaskId,
} from '../core/index.ts';
import type { Logger } from '../observability/index.ts';
import { type Queues, runIdFor, type TickJob, TickJobSchema } from '../queue/index.ts';
import {
  type ArtifactStore,
  type AuditLog,
  copyStoredFiles,
  type ScheduleStore,
  type StateStore,
} from '../storage/index.ts';
import { artifactLinks } from './artifact-links.ts';
import type { ChatSurface } from './chat-surface.ts';
import type { IncomingFile } from './incoming-file.ts';
import type { BriefView, FileLink, ScheduleInfo, ScheduleListView } from './views.ts';
import { statusView } from './views.ts';

/** A clock tick this late (the process was busy or restarting) still counts as on time. */
const onTimeGraceMs = 60_000;
/** How long another bot may be in the middle of posting a brief before its claim counts as lost. */
const postClaimGraceMs = 120_000;
/** Default window in which a missed tick is still caught up. */
export const defaultCatchUpWindowMs = 6 * 3_600_000;
/** How much of a brief's markdown deliverable the message shows. */
const briefBodyChars = 2_800;

/**
 * Thrown when a tick must wait (another bot is in the middle of posting its brief): the
 * worker puts the job back until `untilMs` without using up an attempt.
 */
export class TickDeferred extends Error {
  constructor(readonly untilMs: number) {
    super('another bot is posting this brief');
  }
}

/** Where people manage schedules, in the surface's own words. */
function manageHint(surface: string): string {
  return surface === 'slack' ? '/handoff schedules' : 'the Schedules panel';
}

export type ScheduleAction = 'pause' | 'resume' | 'run_now' | 'delete' | 'edit';

export interface ScheduleDeps {
  state: StateStore;
  schedules: ScheduleStore;
  queues: Queues;
  audit: AuditLog;
  store: ArtifactStore;
  logger: Logger;
  demo: boolean;
  downloadTtlMs: number;
  policyFor: (conversation: Pick<ConversationRef, 'surface' | 'channel'>) => PlanPolicy;
  surfaceFor: (surface: string) => ChatSurface;
  /** Whether `who` may approve in a channel (the channel's approver rule, groups resolved). */
  isApprover: (conversation: ConversationRef, who: Identity) => Promise<boolean>;
  /** Names a channel's approvers in the surface's own syntax, for notices. */
  approversText: (conversation: ConversationRef) => string;
  /** Creates the task that proposes a schedule (the gateway's request path, with its checks). */
  submit: (input: {
    conversation: ConversationRef;
    requester: Identity;
    text: string;
    files: IncomingFile[];
    schedule: ScheduleDraft;
    copyInputs?: StoredFile[];
  }) => Promise<Task>;
  /** Posts the first answer under a new proposal ("Drafting…"). */
  acknowledge: (task: Task) => Promise<void>;
}

const tzSourceWords: Record<ScheduleTiming['tzSource'], string> = {
  given: 'given in the request',
  channel: "the channel's zone",
  requester: "the requester's zone",
  default: 'no zone was given, so UTC',
};

/**
 * Scheduled briefs: proposing a schedule (a task whose approved plan becomes the standing
 * plan), its clock (one BullMQ job scheduler per schedule, reconciled from the records),
 * each tick (one task and one post per tick, whoever handles it), the brief it posts, and
 * what owners and approvers do with schedules.
 */
export class Schedules {
  constructor(private readonly deps: ScheduleDeps) {}

  private policy(target: Pick<ChannelRef, 'surface' | 'channel'>): SchedulePolicy {
    return this.deps.policyFor(target).schedules ?? defaultSchedulePolicy;
  }

  /**
   * Reads a rule against a channel's policy: the pattern, zone and words, or a refusal
   * that says what was understood and gives examples.
   */
  async readTiming(input: {
    target: ChannelRef;
    requester: Identity;
    when: string;
    catchUp?: CatchUp;
    /** The requester's zone when the surface knows it from elsewhere (the console's browser). */
    requesterTz?: string;
    /** A new time for an existing schedule keeps its zone unless the rule names one. */
    keep?: Pick<ScheduleTiming, 'tz' | 'tzSource'>;
    /** …and its catch-up window unless the rule names one. */
    keepWindowMs?: number;
  }): Promise<ScheduleTiming> {
    const when = input.when.trim().slice(0, 300);
    const parsed = parseScheduleRule(when);
    if (!parsed.ok) {
      throw new HandoffError(
        ErrorCodes.scheduleInvalid,
        `I could not read "${when}" as a schedule: ${parsed.understood}. Try, for example: ${parsed.examples.map((e) => `"${e}"`).join(', ')}.`,
      );
    }
    const policy = this.policy(input.target);
    const requesterTz = parsed.rule.tz
      ? undefined
      : (input.requesterTz ??
        (await this.deps
          .surfaceFor(input.target.surface)
          .person(input.target, input.requester.id)
          .then((p) => p?.tz)
          .catch(() => undefined)));
    let zone: { tz: string; source: ScheduleTiming['tzSource'] };
    try {
      zone =
        input.keep && !parsed.rule.tz
          ? { tz: input.keep.tz, source: input.keep.tzSource }
          : resolveTimeZone({
              ...(parsed.rule.tz ? { given: parsed.rule.tz } : {}),
              ...(policy.timeZone ? { channel: policy.timeZone } : {}),
              ...(requesterTz ? { requester: requesterTz } : {}),
            });
    } catch (err) {
      throw new HandoffError(ErrorCodes.scheduleInvalid, err instanceof Error ? err.message : String(err));
    }
    const gap = smallestIntervalMs(parsed.rule.pattern, zone.tz, new Date());
    if (gap < policy.minIntervalMs) {
      throw new HandoffError(
        ErrorCodes.scheduleInvalid,
        `"${when}" would run ${parsed.rule.words}, but this channel allows at most one run every ${formatSpan(policy.minIntervalMs)}; choose a less frequent rule`,
      );
    }
    return {
      pattern: parsed.rule.pattern,
      tz: zone.tz,
      tzSource: zone.source,
      words: parsed.rule.words,
      text: when,
      catchUp: parsed.rule.catchUp ?? input.catchUp ?? 'latest',
      catchUpWindowMs: parsed.rule.catchUpWindowMs ?? input.keepWindowMs ?? defaultCatchUpWindowMs,
    };
  }

  /**
   * Proposes a schedule: checks the channel's rules, then creates the task that drafts
   * its standing plan. Nothing is saved as a schedule until that plan is approved.
   */
  async propose(input: {
    conversation: ConversationRef;
    requester: Identity;
    when: string;
    text: string;
    files: IncomingFile[];
    copyInputs?: StoredFile[];
    replaces?: string;
    catchUp?: CatchUp;
    requesterTz?: string;
  }): Promise<Task> {
    const c = input.conversation;
    const target: ChannelRef = {
      surface: c.surface,
      channel: c.channel,
      ...(c.workspace ? { workspace: c.workspace } : {}),
    };
    const policy = this.policy(target);
    if (policy.create === 'approvers' && !(await this.deps.isApprover(c, input.requester))) {
      throw new HandoffError(
        ErrorCodes.notApprover,
        `only approvers may create schedules in this channel; ask ${this.deps.approversText(c)}`,
      );
    }
    if (!input.replaces && (await this.deps.schedules.countInChannel(target)) >= policy.maxPerChannel) {
      throw new HandoffError(
        ErrorCodes.scheduleInvalid,
        `this channel already has ${policy.maxPerChannel} schedules, its maximum; delete one first (${manageHint(target.surface)})`,
      );
    }
    const timing = await this.readTiming({
      target,
      requester: input.requester,
      when: input.when,
      ...(input.catchUp ? { catchUp: input.catchUp } : {}),
      ...(input.requesterTz ? { requesterTz: input.requesterTz } : {}),
    });
    const draft: ScheduleDraft = { timing, target, ...(input.replaces ? { replaces: input.replaces } : {}) };
    const task = await this.deps.submit({
      conversation: c,
      requester: input.requester,
      text: input.text,
      files: input.files,
      schedule: draft,
      ...(input.copyInputs ? { copyInputs: input.copyInputs } : {}),
    });
    await this.deps.audit.append({
      type: 'schedule.created',
      taskId: task.id,
      actor: input.requester.id,
      data: {
        rule: timing.pattern,
        words: timing.words,
        tz: timing.tz,
        tzSource: timing.tzSource,
        target: `${target.surface}:${target.channel}`,
        ...(input.replaces ? { replaces: input.replaces } : {}),
      },
    });
    return task;
  }

  /**
   * "Schedule…" on a finished task's result: proposes running the same request, with the
   * same files, on a schedule. The proposal gets a top-level message of its own in the
   * channel, whose thread holds its plan card and the first answer under it.
   */
  async proposeFrom(input: {
    taskId: string;
    when: string;
    by: Identity;
    requesterTz?: string;
    /** The surface the click came from: a task of another surface is not found there. */
    surface: string;
  }): Promise<Task> {
    const source = await this.deps.state.requireTask(input.taskId);
    if (source.conversation.surface !== input.surface)
      throw new HandoffError(ErrorCodes.notFound, `no task ${input.taskId}`);
    if (source.brief || source.schedule)
      throw new HandoffError(ErrorCodes.invalidInput, 'this task is already part of a schedule');
    const c = source.conversation;
    const target: ChannelRef = {
      surface: c.surface,
      channel: c.channel,
      ...(c.workspace ? { workspace: c.workspace } : {}),
    };
    // Checked before anything is posted: a refusal leaves no message behind.
    await this.readTiming({
      target,
      requester: input.by,
      when: input.when,
      ...(input.requesterTz ? { requesterTz: input.requesterTz } : {}),
    });
    const root = await this.deps
      .surfaceFor(c.surface)
      .postToChannel(
        target,
        statusView(
          source,
          `${input.by.name} asked to run this again, ${input.when.trim()}: ${shorten(source.request, 200)}`,
        ),
      );
    const task = await this.propose({
      conversation: { ...target, thread: root },
      requester: input.by,
      when: input.when,
      text: source.request,
      files: [],
      copyInputs: source.inputs,
      ...(input.requesterTz ? { requesterTz: input.requesterTz } : {}),
    });
    await this.acknowledgeQuietly(task);
    return task;
  }

  /** The first answer under a proposal that opened its own thread; a failure to post it is only logged. */
  private async acknowledgeQuietly(task: Task): Promise<void> {
    await this.deps
      .acknowledge(task)
      .catch((err) => this.deps.logger.warn({ err, taskId: task.id }, 'could not acknowledge the proposal'));
  }

  /** A schedule, if `personId` owns it (what an owner may edit in place). */
  async ownedSchedule(scheduleId: string, personId: string): Promise<Schedule | undefined> {
    const s = await this.deps.schedules.get(scheduleId);
    return s && s.status !== 'deleted' && s.owner.id === personId ? s : undefined;
  }

  /** Schedules a person owns, on one surface (App Home). */
  async ownedBy(surface: string, personId: string): Promise<Schedule[]> {
    const all = await this.deps.schedules.load(await this.deps.schedules.allIds());
    return all.filter((s) => s.target.surface === surface && s.owner.id === personId);
  }

  /** The schedule part of a plan card, computed when the card is drawn. */
  info(task: Task, plan: Plan, policy: PlanPolicy): ScheduleInfo | undefined {
    const draft = task.schedule;
    if (!draft) return undefined;
    const t = draft.timing;
    const cap = policy.budget?.monthlyCostCapUsd;
    return {
      ...(draft.scheduleId ? { scheduleId: draft.scheduleId } : {}),
      words: t.words,
      tz: t.tz,
      tzSource: tzSourceWords[t.tzSource],
      nextRuns: nextRuns(t.pattern, t.tz, new Date(), 3).map((d) => formatRunTime(d, t.tz)),
      owner: task.requester.name,
      target: draft.target.channel,
      envelope: {
        tools: plan.envelope.tools,
        connectors: (plan.envelope.connectors ?? []).map((t) => `${t.title ?? t.connector}: ${t.tool} (${t.trust})`),
        deliverableTypes: plan.envelope.deliverableTypes,
        maxCostUsdPerRun: plan.envelope.budget.maxCostUsd,
        maxWallTimeMin: Math.round(plan.envelope.budget.maxWallTimeMs / 60_000),
        ...(cap !== undefined ? { monthlyCapUsd: cap } : {}),
      },
      catchUp: t.catchUp,
      ...(draft.replaces ? { replaces: draft.replaces } : {}),
    };
  }

  /**
   * The standing plan was approved: the schedule is saved (or, for an edit, replaced) and
   * its clock started. The id derives from the task, so doing it twice saves one schedule.
   */
  async activate(task: Task, plan: Plan): Promise<Schedule> {
    const draft = task.schedule;
    if (!draft || !task.decision) throw new HandoffError(ErrorCodes.notFound, `task ${task.id} proposes no schedule`);
    const { schedules, queues, audit, state } = this.deps;
    const id = draft.replaces ?? `s_${task.id.replace(/^t_/, '')}`;
    // Copied under the schedule's own keys: they outlive the task that proposed it.
    const inputs = await copyStoredFiles(this.deps.store, task.inputs, `schedules/${id}/in`);
    const approvers = [...task.votes.filter((v) => v.planVersion === plan.version).map((v) => v.by)];
    if (!approvers.some((a) => a.id === task.decision!.by.id)) approvers.push(task.decision.by);
    const now = new Date().toISOString();
    const fields = {
      owner: task.requester,
      target: draft.target,
      request: task.request,
      inputs,
      timing: draft.timing,
      plan,
      planHash: planHash(plan),
      approvedBy: approvers,
      approvedAt: task.decision.at,
      sourceTaskId: task.id,
      demo: task.demo,
    };
    let schedule: Schedule;
    if (draft.replaces) {
      ({ after: schedule } = await schedules.update(id, (s) => ({
        ...s,
        ...fields,
        status: 'active',
        failuresInARow: 0,
        lastDigests: [],
      })));
    } else {
      const existing = await schedules.get(id);
      schedule = existing ?? {
        id,
        createdAt: now,
        updatedAt: now,
        ...fields,
        status: 'active',
        failuresInARow: 0,
        lastDigests: [],
      };
      if (!existing) await schedules.create(schedule);
    }
    await queues.upsertScheduleClock(id, schedule.timing.pattern, schedule.timing.tz);
    await state.updateTask(task.id, (t) => ({ ...t, schedule: { ...draft, scheduleId: id } }));
    await audit.append({
      type: draft.replaces ? 'schedule.edited' : 'schedule.approved',
      taskId: task.id,
      actor: task.decision.by.id,
      data: {
        scheduleId: id,
        planHash: schedule.planHash,
        approvedBy: approvers.map((a) => a.id),
        rule: schedule.timing.pattern,
        tz: schedule.timing.tz,
        target: `${schedule.target.surface}:${schedule.target.channel}`,
      },
    });
    return schedule;
  }

  /** The words posted under an approved schedule's plan card. */
  activeText(schedule: Schedule): string {
    const t = schedule.timing;
    const next = nextRuns(t.pattern, t.tz, new Date(), 3).map((d) => formatRunTime(d, t.tz));
    return `Schedule ${schedule.id} is active: ${t.words} (${t.tz}). Next runs: ${next.join('; ')}. Each brief is posted as a new message in this channel; manage it with ${manageHint(schedule.target.surface)}.`;
  }

  /** Handles one tick job, from the clock or from Handoff itself (catch-up, Run now). */
  async tick(job: Pick<Job<TickJob>, 'data' | 'id' | 'opts'>): Promise<void> {
    const data = TickJobSchema.parse(job.data);
    const fromClock = data.scheduledAtMs === undefined;
    let scheduledAtMs = data.scheduledAtMs ?? clockTime(job);
    const schedule = await this.deps.schedules.get(data.scheduleId);
    if (!schedule || schedule.status === 'deleted') {
      // A clock left behind by a deleted schedule: stop it.
      if (fromClock) await this.deps.queues.removeScheduleClock(data.scheduleId).catch(() => undefined);
      return;
    }
    if (schedule.status === 'paused' && !data.manual) return;
    const now = Date.now();
    let lateMs = 0;
    if (!data.manual) {
      // Missed several ticks: only the most recent one runs, never a burst.
      const latest = latestRunAtOrBefore(schedule.timing.pattern, schedule.timing.tz, new Date(now))?.getTime();
      if (latest !== undefined && latest > scheduledAtMs) scheduledAtMs = latest;
      lateMs = Math.max(0, now - scheduledAtMs);
      if (lateMs > onTimeGraceMs && (schedule.timing.catchUp === 'none' || lateMs > schedule.timing.catchUpWindowMs)) {
        await this.recordMissed(schedule, scheduledAtMs, lateMs);
        return;
      }
    }
    await this.openTick(schedule, scheduledAtMs, {
      manual: data.manual === true,
      lateMs,
      ...(data.by ? { by: data.by } : {}),
    });
  }

  private async recordMissed(schedule: Schedule, scheduledAtMs: number, lateMs: number): Promise<void> {
    const taskId = tickTaskId(schedule.id, scheduledAtMs);
    if (schedule.lastTick?.taskId === taskId) return;
    await this.deps.audit.append({
      type: 'schedule.tick_missed',
      data: {
        scheduleId: schedule.id,
        scheduledAt: new Date(scheduledAtMs).toISOString(),
        lateMs,
        catchUp: schedule.timing.catchUp,
      },
    });
    await this.deps.schedules.update(schedule.id, (s) => ({
      ...s,
      lastTick: {
        at: new Date(scheduledAtMs).toISOString(),
        taskId,
        outcome: 'missed',
        message: `missed: Handoff was down at the time and the run was ${formatSpan(lateMs)} late`,
      },
    }));
  }

  /**
   * Opens one tick: checks the owner and the channel, posts the brief's message (claimed
   * first, so it is posted once), creates the tick's task under the standing plan and
   * queues its run. Safe to repeat: every step finds what an earlier attempt did.
   */
  private async openTick(
    schedule: Schedule,
    scheduledAtMs: number,
    how: { manual: boolean; lateMs: number; by?: Identity },
  ): Promise<void> {
    const { state, schedules, audit, queues, logger } = this.deps;
    const taskId = tickTaskId(schedule.id, scheduledAtMs);
    const existing = await state.getTask(taskId);
    if (existing) {
      // An earlier attempt created it: make sure its run was queued, then stop.
      if (existing.state === 'queued') await queues.enqueueRun({ taskId, planVersion: 1, runId: runIdFor(taskId, 1) });
      return;
    }
    const surface = this.deps.surfaceFor(schedule.target.surface);
    const owner = await surface.person(schedule.target, schedule.owner.id).catch(() => undefined);
    if (owner && !owner.active) {
      await this.pause(schedule.id, `its owner ${schedule.owner.name} is no longer in the workspace`, undefined);
      const approvers = this.deps.approversText(channelConversation(schedule.target, '-'));
      await surface
        .postToChannel(
          schedule.target,
          statusView(
            schedule,
            `The schedule "${shorten(schedule.request, 80)}" (${schedule.timing.words}) is paused: its owner ${schedule.owner.name} has left. ${approvers}: resume it to become its owner, or delete it (${manageHint(schedule.target.surface)}).`,
            'error',
          ),
        )
        .catch((err) => logger.warn({ err, scheduleId: schedule.id }, 'could not tell the channel a schedule paused'));
      return;
    }
    const cap = this.deps.policyFor(schedule.target).budget?.monthlyCostCapUsd;
    const spent = cap === undefined ? 0 : await state.channelCost(schedule.target, new Date());
    const startedAt = new Date().toISOString();
    const brief = {
      scheduleId: schedule.id,
      scheduledAt: new Date(scheduledAtMs).toISOString(),
      startedAt,
      manual: how.manual,
    };
    const view = this.briefView(schedule, { taskId, brief, lateMs: how.lateMs, state: 'running', files: [] });

    const claim = await schedules.claimPost(taskId);
    let ref: string;
    if (claim.state === 'posted') ref = claim.ref;
    else if (claim.state === 'claimed') {
      if (Date.now() - claim.since < postClaimGraceMs) throw new TickDeferred(claim.since + postClaimGraceMs + 1000);
      // Claimed by a process that died between sending and recording: it may be in the channel
      // already, and a brief is never posted twice.
      await audit.append({ type: 'schedule.post_unknown', data: { scheduleId: schedule.id, taskId } });
      await this.settle(
        schedule.id,
        taskId,
        brief.scheduledAt,
        'failed',
        'the process posting it stopped midway; it was not posted again, so it may be missing',
      );
      return;
    } else {
      try {
        ref = await surface.postToChannel(schedule.target, view);
      } catch (err) {
        await schedules.releasePost(taskId);
        if (err instanceof HandoffError && err.code === ErrorCodes.channelUnavailable) {
          await this.channelGone(schedule, err.message);
          return;
        }
        throw err;
      }
      await schedules.posted(taskId, ref);
    }

    const plan: Plan = { ...schedule.plan, taskId, version: 1 };
    const base = newTask(
      {
        id: taskId,
        conversation: { ...schedule.target, thread: ref },
        requester: schedule.owner,
        request: schedule.request,
        inputs: schedule.inputs,
        demo: schedule.demo,
      },
      new Date(),
    );
    const overCap = cap !== undefined && spent >= cap;
    const task: Task = {
      ...base,
      planVersion: 1,
      brief,
      ...(overCap
        ? {
            state: 'failed' as const,
            finishedAt: startedAt,
            failure: {
              code: ErrorCodes.budgetExceeded,
              message: `this channel has used $${spent.toFixed(2)} of its $${cap.toFixed(2)} monthly budget`,
            },
          }
        : {
            state: 'queued' as const,
            decision: {
              by: schedule.approvedBy[0]!,
              at: schedule.approvedAt,
              outcome: 'approved' as const,
              planVersion: 1,
              planHash: planHash(plan),
            },
          }),
    };
    await state.savePlan(plan);
    try {
      await state.createTask(task);
    } catch (err) {
      // Another bot created it between our look and now: it carries the tick on.
      if (await state.getTask(taskId)) return;
      throw err;
    }
    await state.setMessageRef(taskId, 'brief', ref);
    await state.linkThread(task.conversation.surface, task.conversation.channel, ref, taskId);
    await audit.append({
      type: 'schedule.tick',
      taskId,
      ...(how.by ? { actor: how.by.id } : {}),
      data: {
        scheduleId: schedule.id,
        scheduledAt: brief.scheduledAt,
        startedAt,
        lateMs: how.lateMs,
        manual: how.manual,
        postRef: ref,
        standingPlanHash: schedule.planHash,
      },
    });
    if (overCap) {
      await state.expireTaskRecords(task);
      await this.renderBrief(task);
      return;
    }
    await queues.enqueueRun({ taskId, planVersion: 1, runId: runIdFor(taskId, 1) });
  }

  /** The bot cannot post in the target channel: the schedule pauses and its owner is told. */
  private async channelGone(schedule: Schedule, why: string): Promise<void> {
    const reason = `Handoff cannot post in ${schedule.target.channel} (${why}); invite the bot back and resume it`;
    await this.pause(schedule.id, reason, undefined);
    await this.deps
      .surfaceFor(schedule.target.surface)
      .notifyPerson(
        schedule.target,
        schedule.owner.id,
        statusView(schedule, `Your schedule "${shorten(schedule.request, 80)}" is paused: ${reason}.`, 'error'),
      )
      .catch((err) => this.deps.logger.warn({ err, scheduleId: schedule.id }, 'could not tell the owner'));
  }

  /**
   * Turns a tick's ended task into its brief: edits the brief's message, records the
   * outcome once (failures in a row; the third pauses the schedule), and on failure
   * tells the owner directly.
   */
  async renderBrief(task: Task): Promise<void> {
    const brief = task.brief;
    if (!brief) return;
    const { state, schedules, store, logger } = this.deps;
    const schedule = await schedules.get(brief.scheduleId);
    const ref = await state.getMessageRef(task.id, 'brief');
    if (!schedule || !ref) return;
    const surface = this.deps.surfaceFor(task.conversation.surface);
    if (!isTerminal(task.state)) return;
    const links: FileLink[] = (await artifactLinks(store, task.artifacts, this.deps.downloadTtlMs)).map(
      ({ artifact, url, expiresAt }) => ({
        name: artifact.name,
        mediaType: artifact.mediaType,
        size: artifact.size,
        url,
        expiresAt,
      }),
    );
    const digests = briefDigests(task);
    let outcome: TickOutcome;
    if (task.state !== 'succeeded') outcome = 'failed';
    else if (digests.length === 0 || (schedule.lastTick?.taskId !== task.id && sameList(digests, schedule.lastDigests)))
      outcome = 'nothing_new';
    else outcome = 'posted';
    // Recorded once per tick: a repeated result event neither counts a failure twice nor re-notifies.
    const first = schedule.lastTick?.taskId !== task.id;
    const after = first
      ? await this.settle(schedule.id, task.id, brief.scheduledAt, outcome, task.failure?.message, digests)
      : schedule;
    const pausedNow = first && after.status === 'paused' && schedule.status !== 'paused';
    const md = outcome === 'posted' ? task.artifacts.find((a) => a.name.toLowerCase().endsWith('.md')) : undefined;
    const body = md ? await readText(store, md.key, briefBodyChars).catch(() => undefined) : undefined;
    const lateMs = Math.max(0, Date.parse(brief.startedAt) - Date.parse(brief.scheduledAt));
    const view = this.briefView(schedule, {
      taskId: task.id,
      brief,
      lateMs,
      state:
        task.state === 'cancelled'
          ? 'cancelled'
          : outcome === 'failed'
            ? 'failed'
            : outcome === 'nothing_new'
              ? 'nothing_new'
              : 'posted',
      files: links,
      ...(task.resultSummary ? { summary: task.resultSummary } : {}),
      ...(body ? { body } : {}),
      ...(outcome === 'failed'
        ? { reason: task.failure?.message ?? 'the run did not finish', advice: adviceFor(task.failure?.code) }
        : {}),
      ...(pausedNow ? { paused: after.pausedReason ?? 'paused' } : {}),
    });
    await surface.update(task.conversation, ref, view);
    if (outcome === 'failed' && first && task.state !== 'cancelled') {
      const text = `Your scheduled brief "${shorten(schedule.request, 80)}" of ${formatRunTime(new Date(brief.scheduledAt), schedule.timing.tz)} failed: ${view.reason}. ${view.advice ?? ''}${pausedNow ? ` The schedule is now paused after ${maxFailuresInARow} failures in a row; resume it with ${manageHint(schedule.target.surface)}.` : ''}`;
      await surface
        .notifyPerson(schedule.target, schedule.owner.id, statusView(schedule, text.trim(), 'error'))
        .catch((err) => logger.warn({ err, scheduleId: schedule.id }, 'could not tell the owner'));
    }
  }

  /** Records a tick's outcome on the schedule; the third failure in a row pauses it. */
  private async settle(
    scheduleId: string,
    taskId: string,
    scheduledAt: string,
    outcome: TickOutcome,
    message?: string,
    digests?: string[],
  ): Promise<Schedule> {
    const { after } = await this.deps.schedules.update(scheduleId, (s) => {
      const failures = outcome === 'failed' ? s.failuresInARow + 1 : 0;
      const pause = failures >= maxFailuresInARow && s.status === 'active';
      return {
        ...s,
        failuresInARow: failures,
        lastTick: { at: scheduledAt, taskId, outcome, ...(message ? { message: message.slice(0, 500) } : {}) },
        ...(outcome === 'posted' && digests ? { lastDigests: digests, lastPostedAt: new Date().toISOString() } : {}),
        ...(pause
          ? { status: 'paused' as const, pausedReason: `paused itself after ${failures} failed briefs in a row` }
          : {}),
      };
    });
    await this.deps.audit.append({
      type: 'schedule.tick_result',
      taskId,
      data: { scheduleId, scheduledAt, outcome, ...(message ? { message: message.slice(0, 500) } : {}) },
    });
    if (after.status === 'paused' && after.failuresInARow >= maxFailuresInARow && outcome === 'failed') {
      await this.deps.queues.removeScheduleClock(scheduleId).catch(() => undefined);
      await this.deps.audit.append({
        type: 'schedule.paused',
        data: { scheduleId, reason: after.pausedReason ?? 'failures in a row' },
      });
    }
    return after;
  }

  private briefView(
    schedule: Schedule,
    p: {
      taskId: string;
      brief: NonNullable<Task['brief']>;
      lateMs: number;
      state: BriefView['state'];
      files: FileLink[];
      summary?: string;
      body?: string;
      reason?: string;
      advice?: string;
      paused?: string;
    },
  ): BriefView {
    const { brief, lateMs, ...rest } = p;
    return {
      kind: 'brief',
      scheduleId: schedule.id,
      title: briefTitle(schedule, p.body),
      date: formatRunTime(new Date(brief.scheduledAt), schedule.timing.tz),
      ...(lateMs > onTimeGraceMs
        ? { late: `${formatSpan(lateMs)} late: Handoff was not running at the scheduled time` }
        : {}),
      ...(brief.manual ? { manual: true } : {}),
      owner: schedule.owner.name,
      demo: schedule.demo,
      ...rest,
    };
  }

  /** The channel's schedules as a list with buttons. */
  async list(target: Pick<ChannelRef, 'surface' | 'channel'>): Promise<ScheduleListView> {
    const all = await this.deps.schedules.inChannel(target);
    return {
      kind: 'schedules',
      channel: target.channel,
      demo: this.deps.demo,
      items: all.map(scheduleItem),
    };
  }

  /**
   * Pause, Resume, Run now, Delete, or Edit (a new time, or a new request that needs a new
   * approval). Allowed to the owner and the channel's approvers; a new time only to the
   * owner. Returns the words to show the person.
   */
  async act(input: {
    scheduleId: string;
    action: ScheduleAction;
    by: Identity;
    /** For edit: the new rule. */
    when?: string;
    /** For edit: a new request (needs a new approval). */
    text?: string;
    /** Opens the thread an edit of the request is proposed in (a new top-level message); only called when one is. */
    openThread?: () => Promise<ConversationRef>;
    /** Where the click came from: a schedule of another surface (or channel, when given) is not found there. */
    from?: { surface: string; channel?: string };
  }): Promise<string> {
    const { schedules, queues, audit } = this.deps;
    const s = await schedules.require(input.scheduleId);
    const from = input.from;
    if (from && (s.target.surface !== from.surface || (from.channel && s.target.channel !== from.channel)))
      throw new HandoffError(
        ErrorCodes.notFound,
        from.channel ? `#${from.channel} has no schedule ${s.id}` : `there is no schedule ${s.id}`,
      );
    const isOwner = s.owner.id === input.by.id;
    const where = channelConversation(s.target, '-');
    if (!isOwner && !(await this.deps.isApprover(where, input.by))) {
      throw new HandoffError(
        ErrorCodes.notApprover,
        `only the schedule's owner (${s.owner.name}) or an approver of this channel may change it`,
      );
    }
    switch (input.action) {
      case 'pause': {
        if (s.status === 'paused') return 'This schedule is already paused.';
        await this.pause(s.id, `paused by ${input.by.name}`, input.by);
        return `Paused: "${shorten(s.request, 60)}" will not run until it is resumed.`;
      }
      case 'resume': {
        const owner = await this.deps
          .surfaceFor(s.target.surface)
          .person(s.target, s.owner.id)
          .catch(() => undefined);
        // An approver resuming a schedule whose owner left takes it over.
        const newOwner = owner && !owner.active ? input.by : s.owner;
        await schedules.update(s.id, (x) => {
          const { pausedReason: _r, ...rest } = x;
          return { ...rest, status: 'active', failuresInARow: 0, owner: newOwner };
        });
        await queues.upsertScheduleClock(s.id, s.timing.pattern, s.timing.tz);
        await audit.append({
          type: 'schedule.resumed',
          actor: input.by.id,
          data: { scheduleId: s.id, ...(newOwner !== s.owner ? { newOwner: newOwner.id } : {}) },
        });
        const next = nextRuns(s.timing.pattern, s.timing.tz, new Date(), 1)[0];
        return `Resumed${newOwner !== s.owner ? `, with ${newOwner.name} as its owner` : ''}: next run ${next ? formatRunTime(next, s.timing.tz) : 'never'}.`;
      }
      case 'run_now': {
        const at = Math.floor(Date.now() / 1000) * 1000;
        await queues.enqueueTick({ scheduleId: s.id, scheduledAtMs: at, manual: true, by: input.by });
        await audit.append({ type: 'schedule.run_now', actor: input.by.id, data: { scheduleId: s.id } });
        return 'Running now: the brief is posted in the channel when it is ready.';
      }
      case 'delete': {
        await schedules.update(s.id, (x) => ({ ...x, status: 'deleted' }));
        await queues.removeScheduleClock(s.id);
        await audit.append({ type: 'schedule.deleted', actor: input.by.id, data: { scheduleId: s.id } });
        await this.deps.store.deletePrefix(`schedules/${s.id}/`).catch(() => 0);
        return `Deleted: "${shorten(s.request, 60)}" will not run again.`;
      }
      case 'edit': {
        if (input.text && input.text.trim() !== s.request) {
          // What it does changes: that needs a new approval, like any plan.
          if (!input.openThread)
            throw new HandoffError(ErrorCodes.invalidInput, 'an edit of the request needs a thread to propose it in');
          // Checked before a thread is opened: a refused rule leaves no message behind.
          if (input.when?.trim())
            await this.readTiming({ target: s.target, requester: input.by, when: input.when, keep: s.timing });
          const proposal = await this.propose({
            conversation: await input.openThread(),
            requester: input.by,
            when: input.when?.trim() || s.timing.text,
            text: input.text,
            files: [],
            copyInputs: s.inputs,
            replaces: s.id,
            catchUp: s.timing.catchUp,
          });
          await this.acknowledgeQuietly(proposal);
          return 'The new request needs approval: a plan card is posted; the schedule keeps its current plan until then.';
        }
        if (!input.when)
          throw new HandoffError(ErrorCodes.invalidInput, 'say the new time, e.g. "every weekday at 9:00"');
        if (!isOwner)
          throw new HandoffError(
            ErrorCodes.notApprover,
            `only the schedule's owner (${s.owner.name}) may change its time`,
          );
        const timing = await this.readTiming({
          target: s.target,
          requester: input.by,
          when: input.when,
          catchUp: s.timing.catchUp,
          keep: s.timing,
          keepWindowMs: s.timing.catchUpWindowMs,
        });
        await schedules.update(s.id, (x) => ({ ...x, timing }));
        if (s.status === 'active') await queues.upsertScheduleClock(s.id, timing.pattern, timing.tz);
        await audit.append({
          type: 'schedule.edited',
          actor: input.by.id,
          data: { scheduleId: s.id, from: s.timing.pattern, to: timing.pattern, tz: timing.tz },
        });
        const next = nextRuns(timing.pattern, timing.tz, new Date(), 3).map((d) => formatRunTime(d, timing.tz));
        return `Changed: now ${timing.words} (${timing.tz}). Next runs: ${next.join('; ')}.`;
      }
    }
  }

  private async pause(id: string, reason: string, by: Identity | undefined): Promise<void> {
    await this.deps.schedules.update(id, (s) => ({ ...s, status: 'paused', pausedReason: reason.slice(0, 500) }));
    await this.deps.queues.removeScheduleClock(id);
    await this.deps.audit.append({
      type: 'schedule.paused',
      ...(by ? { actor: by.id } : {}),
      data: { scheduleId: id, reason },
    });
  }

  /**
   * Makes the clocks match the records (a record is the truth: an active schedule has a
   * clock with its rule, anything else has none), then catches up, once each, ticks that
   * were missed while nothing ran. Safe for several bots at once.
   */
  async reconcile(now = Date.now()): Promise<{ clocks: number; removed: number; caughtUp: number }> {
    const { schedules, queues, state } = this.deps;
    const all = await schedules.load(await schedules.allIds());
    const active = new Map(all.filter((s) => s.status === 'active').map((s) => [s.id, s]));
    const clocks = await queues.scheduleClockIds();
    let removed = 0;
    for (const clock of clocks) {
      if (!active.has(clock.id)) {
        await queues.removeScheduleClock(clock.id);
        removed++;
      }
    }
    const have = new Map(clocks.map((c) => [c.id, c]));
    let caughtUp = 0;
    for (const s of active.values()) {
      const clock = have.get(s.id);
      if (!clock || clock.pattern !== s.timing.pattern || clock.tz !== s.timing.tz)
        await queues.upsertScheduleClock(s.id, s.timing.pattern, s.timing.tz);
      if (s.timing.catchUp === 'none') continue;
      const latest = latestRunAtOrBefore(s.timing.pattern, s.timing.tz, new Date(now))?.getTime();
      if (latest === undefined || now - latest > s.timing.catchUpWindowMs || now - latest <= onTimeGraceMs) continue;
      if (latest <= Date.parse(s.approvedAt)) continue;
      if (s.lastTick && Date.parse(s.lastTick.at) >= latest) continue;
      if (await state.getTask(tickTaskId(s.id, latest))) continue;
      await queues.enqueueTick({ scheduleId: s.id, scheduledAtMs: latest });
      caughtUp++;
    }
    return { clocks: active.size, removed, caughtUp };
  }
}

/** A schedule as a list shows it: its rule, owner, status, next run and last result. */
export function scheduleItem(s: Schedule): ScheduleListView['items'][number] {
  const next = s.status === 'active' ? nextRuns(s.timing.pattern, s.timing.tz, new Date(), 1)[0] : undefined;
  return {
    id: s.id,
    request: shorten(s.request, 140),
    owner: s.owner.name,
    words: s.timing.words,
    tz: s.timing.tz,
    status: s.status === 'paused' ? 'paused' : 'active',
    ...(s.pausedReason && s.status === 'paused' ? { pausedReason: s.pausedReason } : {}),
    ...(next ? { nextRun: formatRunTime(next, s.timing.tz) } : {}),
    ...(s.lastTick ? { lastResult: lastResultText(s) } : {}),
  };
}

/** The scheduled time of a clock's job: BullMQ names it `repeat:<scheduler>:<millis>` and keeps it in `prevMillis`. */
function clockTime(job: Pick<Job<TickJob>, 'id' | 'opts'>): number {
  const prev = (job.opts as { prevMillis?: number }).prevMillis;
  if (typeof prev === 'number' && prev > 0) return prev;
  const fromId = Number(job.id?.split(':').at(-1));
  if (Number.isFinite(fromId) && fromId > 0) return fromId;
  return Date.now();
}

function channelConversation(target: ChannelRef, thread: string): ConversationRef {
  return { ...target, thread };
}

/**
 * What makes a brief new: the digests of its non-empty text deliverables (md, csv), whose
 * bytes are the content; binary files (a PDF's timestamps) differ every run. Without text
 * deliverables, every non-empty file counts. Empty when the run delivered nothing.
 */
function briefDigests(task: Task): string[] {
  const files = task.artifacts.filter((a) => a.size > 0);
  const text = files.filter((a) => /\.(md|csv|txt)$/i.test(a.name));
  return (text.length > 0 ? text : files).map((a) => a.sha256).sort();
}

/** "15 min", "2 h 5 min", "3 d": schedules speak in minutes at the finest. */
function formatSpan(ms: number): string {
  const minutes = Math.max(1, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
  return `${Math.round(hours / 24)} d`;
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function shorten(text: string, max: number): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= max ? one : `${one.slice(0, max - 1)}…`;
}

/** The brief's title: its markdown's first heading, else the request. */
function briefTitle(schedule: Schedule, body: string | undefined): string {
  const heading = body?.match(/^#\s+(.+)$/m)?.[1]?.trim();
  return shorten(heading || schedule.request, 80);
}

function lastResultText(s: Schedule): string {
  const t = s.lastTick!;
  const when = formatRunTime(new Date(t.at), s.timing.tz);
  const words: Record<TickOutcome, string> = {
    posted: 'posted',
    nothing_new: 'nothing new',
    failed: 'failed',
    skipped: 'skipped',
    missed: 'missed',
  };
  return `${words[t.outcome]} (${when})${t.message && t.outcome !== 'posted' ? `: ${shorten(t.message, 120)}` : ''}`;
}

/** What to do about a failed brief, by failure. */
function adviceFor(code: string | undefined): string {
  switch (code) {
    case ErrorCodes.budgetExceeded:
      return 'Raise the budget or the monthly cap in the policy, or wait for next month; the next run tries again.';
    case ErrorCodes.deliverablesMissing:
      return 'The request may no longer fit the files: Edit the schedule, or Run now to try again.';
    case ErrorCodes.sandboxUnavailable:
    case ErrorCodes.sandboxFailed:
      return 'An admin should check the runners (`handoff doctor`); Run now once they are back.';
    case ErrorCodes.modelFailed:
    case ErrorCodes.modelStopped:
    case ErrorCodes.modelTruncated:
      return 'The model API failed; the next run tries again, or use Run now.';
    case ErrorCodes.approvalExpired:
      return 'A step needed an approval nobody gave in time; approve it sooner next time, or Edit the schedule.';
    case ErrorCodes.cancelled:
      return 'It was cancelled; the next run goes ahead as scheduled.';
    default:
      return 'Use Run now to try again, or Edit the schedule; the next run also tries again.';
  }
}

async function readText(store: ArtifactStore, key: string, max: number): Promise<string> {
  const stream = await store.get(key);
  let text = '';
  for await (const chunk of stream) {
    text += Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
    if (text.length > max) {
      stream.destroy();
      return `${text.slice(0, max)}…`;
    }
  }
  return text;
}
