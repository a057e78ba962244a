import { createHash } from 'node:crypto';
import type {
  ActionDecision,
  ActionKind,
  ChannelContext,
  Checkpoint,
  GrantSubject,
  PendingAction,
  PendingQuestion,
  Plan,
  Prices,
  QuestionAnswer,
  Task,
  ThreadMessage,
  ToolCallRecord,
  TrustLevel,
} from '../core/index.ts';
import { addUsage, budgetTokens, costUsd, ErrorCodes, grantPatternsFor, HandoffError, newId } from '../core/index.ts';
import { traceModelCall, traceToolCall } from '../observability/index.ts';
import { channelContextMessage } from './channel-context.ts';
import { toolNameSeparator } from './connectors/index.ts';
import type { ContentBlock, MessageParam, ModelProvider, ServerTool, ToolDefinition } from './model/provider.ts';
import { runSystem, taskMessage, threadMessageText } from './prompts.ts';
import { applyRedactor, type Redactor } from './redactor.ts';
import {
  abbreviateStrings,
  classifyToolCall,
  inputsDir,
  isKnownTool,
  outputsDir,
  resolveSandboxPath,
  runTools,
  workspaceRoot,
} from './tools.ts';

/** What the runner lends the loop: a sandbox to run in, a thread to deliver to. */
export interface ToolHost {
  exec(
    argv: string[],
    options: { timeoutMs: number; stdin?: string; onOutput?: (chunk: string) => void },
  ): Promise<{
    exitCode: number;
    stdout: string;
    stderr: string;
    timedOut: boolean;
    oomKilled: boolean;
    truncated: boolean;
  }>;
  deliver(path: string, name: string): Promise<{ name: string; size: number }>;
  /**
   * Changes an input file after a person approved it. Inputs are mounted read-only in
   * the sandbox, so this happens outside it, on the workspace; `content` undefined deletes.
   */
  changeInput(name: string, content: string | undefined): Promise<void>;
  /** Messages people posted in the thread that the model has not seen yet, oldest first (not consumed). */
  threadMessages?(): Promise<ThreadMessage[]>;
  /** Marks the first `count` thread messages as seen by the model (after the checkpoint holding them is saved). */
  consumeThreadMessages?(count: number): Promise<void>;
  /**
   * Saves what changed under /workspace/out since the last call (the workspace's durable
   * state). Called after any call that may have written there, before the checkpoint.
   */
  syncOutputs?(): Promise<void>;
  /**
   * Web domains outside the envelope that the run tried to reach since the last call (the
   * egress proxy or web_fetch held them), emptied by the call.
   */
  takeHeldEgress?(): string[];
  /** Lets the run reach these domains from now on (a person approved them). */
  grantEgress?(domains: readonly string[]): void;
}

/**
 * Tools the runner offers beyond the built-in ones (connector tools, web_fetch). Their
 * definitions are fixed for the run, so the tool list stays byte-stable across turns.
 */
export interface ExtraTools {
  definitions: ToolDefinition[];
  /** The kind and level of a call to one of these tools; undefined when `name` is not one of them. */
  classify(
    name: string,
    input: Record<string, unknown>,
  ): { action: ActionKind | undefined; trust: TrustLevel } | undefined;
  /** Runs one; failures come back as error results. */
  run(name: string, input: Record<string, unknown>, signal: AbortSignal): Promise<ToolResult>;
  /** A short line for progress and approval cards. */
  describe(name: string, input: Record<string, unknown>): string;
}

export interface ProgressUpdate {
  stepStatus: Checkpoint['stepStatus'];
  activity?: string;
  outputTail?: string;
  usage: Checkpoint['usage'];
}

/** What ended the wait for a question: the reply bound to it, or its expiry. */
export type QuestionOutcome = QuestionAnswer | { questionId: string; expired: true };

export interface RunLoopOptions {
  provider: ModelProvider;
  host: ToolHost;
  task: Task;
  plan: Plan;
  checkpoint: Checkpoint;
  save(checkpoint: Checkpoint): Promise<void>;
  progress(update: ProgressUpdate): void;
  /** Records a finished call (the audit trail). Awaited: a call whose record cannot be written stops the run. */
  onToolCall?(record: ToolCallRecord, input: Record<string, unknown>): Promise<void> | void;
  signal: AbortSignal;
  commandTimeoutMs: number;
  prices: Prices;
  trustLevels: Readonly<Record<ActionKind, TrustLevel>>;
  maxTurns?: number;
  /** max_tokens of each model call. Default 8192. */
  maxTokensPerCall?: number;
  /** How many replies in a row may be cut off (max_tokens) or paused (pause_turn) and continued. Default 3. */
  maxContinuations?: number;
  /** A person's decision on the checkpoint's pending action, when resuming after one. */
  actionDecision?: ActionDecision;
  /** The answer to (or expiry of) the checkpoint's pending question, when resuming after one. */
  questionOutcome?: QuestionOutcome;
  /** How long a person has to decide on a paused call. */
  approvalExpiryMs: number;
  /** How long a question stays open. Default 30 minutes. */
  questionTimeoutMs?: number;
  /** Applied to every text before it reaches the model and the checkpoint (the request, tool results, replies). */
  redact?: Redactor;
  /** Connector tools and web_fetch, when the run has any. */
  extraTools?: ExtraTools;
  /** Tools the model API runs itself (web search limited to the envelope's domains). */
  serverTools?: ServerTool[];
  /** The channel's instructions and memory, placed before the request in the first message. */
  channelContext?: ChannelContext;
  /** Told of each server-side tool use (a web search), for the audit trail. */
  onServerToolUse?(use: { name: string; input: unknown }): Promise<void> | void;
  /**
   * Standing grants, asked before a call pauses for a person (src/approvals/grants.ts). It
   * answers who granted every one of the call's patterns (`pending.grantPatterns`), after
   * writing the audit record of the use, or undefined (the call pauses as before). It MUST
   * check revocation, expiry and the channel's policy as it is now.
   */
  standingGrant?(pending: PendingAction): Promise<{ grantIds: string[]; by: { id: string; name: string } } | undefined>;
}

export interface RunOutcome {
  /**
   * `paused`: a call waits for a person (checkpoint.pendingAction) or a question for an
   * answer (checkpoint.pendingQuestion); nothing else runs until then.
   */
  status: 'succeeded' | 'failed' | 'paused';
  summary: string;
  failure?: { code: string; message: string };
  checkpoint: Checkpoint;
}

export type ToolResult = { content: string; isError: boolean };

const readable = [workspaceRoot, '/tmp'];
const writable = [outputsDir, '/tmp'];
/** Calls after which /workspace/out may differ. */
const mutating = new Set(['run_command', 'write_file', 'edit_file', 'delete_file']);
/** The largest max_tokens a cut-off tool call is retried with. */
const maxRetryTokens = 64_000;

/**
 * The agent loop: Messages API turns with tool use until the model ends its turn.
 * Every turn is checkpointed, every call goes through the policy gate, every text bound
 * for the model is redacted first, and every tool failure goes back to the model as an
 * error result rather than crashing the run. A reply cut off at max_tokens is continued
 * (up to a limit), a refusal fails the run, and a run only succeeds when it delivered
 * every planned deliverable.
 */
export async function runAgentLoop(options: RunLoopOptions): Promise<RunOutcome> {
  const { provider, plan, signal } = options;
  const cp: Checkpoint = {
    ...options.checkpoint,
    partialResults: options.checkpoint.partialResults ?? [],
    notes: options.checkpoint.notes ?? [],
    continuations: options.checkpoint.continuations ?? 0,
  };
  const system = runSystem(plan);
  const maxTurns = options.maxTurns ?? 60;
  const maxTokensPerCall = options.maxTokensPerCall ?? 8192;
  const maxContinuations = options.maxContinuations ?? 3;
  const tools = options.extraTools ? [...runTools, ...options.extraTools.definitions] : runTools;
  if (cp.egressGranted?.length) options.host.grantEgress?.(cp.egressGranted);

  /** A call this loop marked in flight in the write before it ran, so its own write is not needed. */
  let marked: string | undefined;
  /** The thread's new messages, read while the last results were saved. */
  let prefetched: ThreadMessage[] | undefined;
  if (cp.messages.length === 0) {
    cp.messages = [
      {
        role: 'user',
        content: applyRedactor(
          options.redact,
          cp.redactions,
          channelContextMessage(options.channelContext) + taskMessage(options.task, 'run'),
        ),
      },
    ];
    // A new run's first checkpoint and the thread's read for its first request go out together.
    const [, incoming] = await Promise.all([options.save(cp), options.host.threadMessages?.()]);
    prefetched = incoming ?? [];
  }

  for (;;) {
    throwIfAborted(signal);
    const pendingUses = unansweredToolUses(cp);
    if (pendingUses.length > 0) {
      for (const use of pendingUses) {
        throwIfAborted(signal);
        const input = (use.input ?? {}) as Record<string, unknown>;
        markStep(cp, input.step, plan.steps.length);
        options.progress({ stepStatus: cp.stepStatus, activity: describe(options, use.name, input), usage: cp.usage });
        const started = Date.now();
        let step: GateResult;
        if (cp.inFlight === use.id && marked !== use.id) {
          // The runner died while this call ran: its effect is unknown, so it is not run again.
          step = {
            kind: 'result',
            result: {
              content: `The runner restarted while this call was in progress; it may or may not have taken effect. Check ${outputsDir} before repeating it.`,
              isError: true,
            },
            ...classify(options, use.name, input),
            decision: 'ran',
          };
        } else if (cp.pendingAction?.toolUseId === use.id) {
          const decision = options.actionDecision;
          if (!decision || decision.approvalId !== cp.pendingAction.id)
            return { status: 'paused', summary: cp.pendingAction.reason, checkpoint: cp };
          const pending = cp.pendingAction;
          step = await traceToolCall(use.name, () => decided(options, cp, pending, decision, use.name, input));
          cp.pendingAction = undefined;
        } else if (cp.pendingQuestion?.toolUseId === use.id) {
          const outcome = options.questionOutcome;
          if (!outcome || outcome.questionId !== cp.pendingQuestion.id)
            return { status: 'paused', summary: cp.pendingQuestion.question, checkpoint: cp };
          step = {
            kind: 'result',
            result: answered(outcome, options),
            action: undefined,
            trust: 'autonomous',
            decision: 'ran',
          };
          cp.pendingQuestion = undefined;
        } else {
          cp.inFlight = use.id;
          if (marked !== use.id) await options.save(cp);
          marked = undefined;
          step = await traceToolCall(use.name, async () => {
            let gated = await gateAndRun(options, cp, use.id, use.name, input);
            if (gated.kind === 'result' && gated.decision === 'ran' && mutating.has(use.name))
              await options.host.syncOutputs?.();
            if (gated.kind === 'result') gated = heldEgress(options, use.id, use.name, input, gated);
            if (gated.kind === 'pause') gated = await viaStandingGrant(options, cp, gated, use.name, input);
            return gated;
          });
        }
        if (step.kind === 'pause' || step.kind === 'question') {
          cp.inFlight = undefined;
          if (step.kind === 'pause') cp.pendingAction = step.pending;
          else cp.pendingQuestion = step.pending;
          await options.save(cp);
          await recordCall(
            options,
            cp,
            { use, input, ...step },
            { decision: 'paused', content: '', isError: false, started },
          );
          const summary = step.kind === 'pause' ? step.pending.reason : step.pending.question;
          return { status: 'paused', summary, checkpoint: cp };
        }
        // Redacted before it is recorded, checkpointed or sent: the removed text is kept nowhere.
        const counts: Record<string, number> = {};
        const content = applyRedactor(options.redact, counts, step.result.content);
        mergeCounts(cp.redactions, counts);
        await recordCall(
          options,
          cp,
          { use, input, ...step },
          { decision: step.decision, content, isError: step.result.isError, started, redactions: counts },
        );
        cp.inFlight = undefined;
        cp.partialResults = [
          ...cp.partialResults,
          {
            type: 'tool_result',
            tool_use_id: use.id,
            content,
            ...(step.result.isError ? { is_error: true } : {}),
          },
        ];
        // After the last call the checkpoint below holds this result too: one write, not two. Before
        // another call, the write that holds this result also marks that call in flight.
        const next = pendingUses[pendingUses.indexOf(use) + 1];
        if (next) {
          marked = markInFlight(cp, next);
          await options.save(cp);
        }
      }
      cp.messages = [...cp.messages, { role: 'user', content: cp.partialResults }];
      cp.partialResults = [];
      // The thread is read while the results are saved: both go out together.
      const [, incoming] = await Promise.all([options.save(cp), options.host.threadMessages?.()]);
      prefetched = incoming ?? [];
      continue;
    }

    // Resumed after the model had already ended its turn (the outcome was not recorded): end the same way.
    const last = cp.messages.at(-1) as MessageParam | undefined;
    if (last?.role === 'assistant' && cp.continuations === 0) return finish(cp, plan, finalText(cp));

    // Whatever people said in the thread meanwhile, and Handoff's own notes, go with the next turn.
    await addThreadMessagesAndNotes(options, cp, prefetched);
    prefetched = undefined;

    if (cp.turn >= maxTurns)
      return fail(cp, ErrorCodes.runTimeout, `the run stopped after ${maxTurns} model turns without finishing`);
    const maxTokens = cp.retryMaxTokens ?? maxTokensPerCall;
    const response = await traceModelCall(provider.model, () =>
      provider.createMessage(
        {
          system,
          messages: cp.messages as MessageParam[],
          tools,
          ...(options.serverTools?.length ? { serverTools: options.serverTools } : {}),
          maxTokens,
        },
        signal,
      ),
    );
    for (const b of response.content) {
      if (b.type === 'server_tool_use') await options.onServerToolUse?.({ name: b.name, input: b.input });
    }
    cp.usage = addUsage(cp.usage, response.usage);
    cp.turn += 1;
    const toolUses = response.content.filter((b) => b.type === 'tool_use');
    const said = textOf(response.content);

    if (response.stopReason === 'max_tokens' || response.stopReason === 'pause_turn') {
      cp.continuations += 1;
      if (cp.continuations > maxContinuations) {
        await options.save(cp);
        return fail(
          cp,
          response.stopReason === 'max_tokens' ? ErrorCodes.modelTruncated : ErrorCodes.modelStopped,
          response.stopReason === 'max_tokens'
            ? `the model's reply was cut off at its length limit (${maxTokens} tokens) ${cp.continuations} times in a row; raise HANDOFF_MAX_TOKENS_PER_CALL or simplify the request`
            : `the model paused its turn ${cp.continuations} times in a row without finishing`,
        );
      }
      if (response.stopReason === 'pause_turn') {
        // The API paused a long turn: sending it back as it is lets the model go on.
        if (response.content.length > 0)
          cp.messages = [...cp.messages, { role: 'assistant', content: response.content }];
      } else if (toolUses.length > 0 || response.content.length === 0) {
        // A tool call cut off mid-arguments cannot be run: ask again with room to finish it.
        cp.retryMaxTokens = Math.min(maxTokens * 2, Math.max(maxRetryTokens, maxTokensPerCall));
      } else {
        cp.messages = [
          ...cp.messages,
          { role: 'assistant', content: response.content },
          {
            role: 'user',
            content:
              'Your reply was cut off at the length limit. Continue exactly where it stopped, without repeating.',
          },
        ];
      }
      await options.save(cp);
      checkBudget(cp, plan, options.prices);
      continue;
    }

    cp.continuations = 0;
    cp.retryMaxTokens = undefined;
    if (response.content.length > 0) cp.messages = [...cp.messages, { role: 'assistant', content: response.content }];
    const overBudget = budgetProblem(cp, plan, options.prices);
    // The write that holds the model's reply also marks its first call in flight, unless the run ends here.
    if (!overBudget && response.stopReason !== 'refusal' && toolUses[0]) marked = markInFlight(cp, toolUses[0]);
    await options.save(cp);
    if (overBudget) throw overBudget;

    if (response.stopReason === 'refusal') {
      return fail(
        cp,
        ErrorCodes.modelRefused,
        `the model declined to continue this request${said ? `: ${said.slice(0, 1500)}` : ''}`,
      );
    }
    if (toolUses.length > 0) continue;
    if (response.stopReason === 'end_turn' || response.stopReason === 'stop_sequence' || response.stopReason === null) {
      return finish(cp, plan, finalText(cp));
    }
    return fail(
      cp,
      ErrorCodes.modelStopped,
      `the model stopped before finishing (${response.stopReason})${said ? `: ${said.slice(0, 1000)}` : ''}`,
    );
  }
}

type ToolUse = { id: string; name: string; input: unknown };

/** Tool calls of the last assistant turn that have no result yet, in order. */
function unansweredToolUses(cp: Checkpoint): ToolUse[] {
  const last = cp.messages.at(-1) as MessageParam | undefined;
  if (last?.role !== 'assistant' || typeof last.content === 'string') return [];
  const answered = new Set(cp.partialResults.map((r) => r.tool_use_id));
  return (last.content.filter((b) => b.type === 'tool_use') as ToolUse[]).filter((u) => !answered.has(u.id));
}

/**
 * Adds thread messages people posted since the last turn, and Handoff's notes, to the
 * user message about to be sent. They are checkpointed before they are marked as seen,
 * so a crash between the two delivers them again rather than losing them.
 */
async function addThreadMessagesAndNotes(
  options: RunLoopOptions,
  cp: Checkpoint,
  prefetched: ThreadMessage[] | undefined,
): Promise<void> {
  const last = cp.messages.at(-1) as MessageParam | undefined;
  // After a paused turn the model goes on from its own message; anything new waits for the next turn.
  if (last?.role !== 'user') return;
  const incoming = prefetched ?? (await options.host.threadMessages?.()) ?? [];
  if (incoming.length === 0 && cp.notes.length === 0) return;
  const blocks = [
    ...cp.notes.map((note) => ({ type: 'text' as const, text: `Note from Handoff: ${note}` })),
    ...incoming.map((m) => ({
      type: 'text' as const,
      text: applyRedactor(options.redact, cp.redactions, threadMessageText(m)),
    })),
  ];
  const content = typeof last.content === 'string' ? [{ type: 'text' as const, text: last.content }] : last.content;
  cp.messages = [...cp.messages.slice(0, -1), { role: 'user', content: [...content, ...blocks] }];
  cp.notes = [];
  await options.save(cp);
  if (incoming.length > 0) await options.host.consumeThreadMessages?.(incoming.length);
}

type GateResult =
  | {
      kind: 'result';
      result: ToolResult;
      action: ActionKind | undefined;
      trust: TrustLevel;
      decision: 'ran' | 'refused';
    }
  | { kind: 'pause'; pending: PendingAction; action: ActionKind | undefined; trust: TrustLevel }
  | { kind: 'question'; pending: PendingQuestion; action: ActionKind | undefined; trust: TrustLevel };

function classify(
  options: RunLoopOptions,
  name: string,
  input: Record<string, unknown>,
): { action: ActionKind | undefined; trust: TrustLevel } {
  const extra = options.extraTools?.classify(name, input);
  if (extra) return extra;
  const action = classifyToolCall(name, input);
  const trust: TrustLevel = action ? options.trustLevels[action] : 'autonomous';
  return { action, trust };
}

function knownTool(options: RunLoopOptions, name: string): boolean {
  return isKnownTool(name) || options.extraTools?.classify(name, {}) !== undefined;
}

function describe(options: RunLoopOptions, name: string, input: Record<string, unknown>): string {
  return options.extraTools?.classify(name, input)
    ? options.extraTools.describe(name, input)
    : describeCall(name, input);
}

/**
 * A call that ran but tried to reach web domains outside the envelope: the proxy held
 * them, and the run now asks a person (watched), unless policy forbids egress outright.
 * The call is not run again either way; its result goes to the model with the outcome.
 */
function heldEgress(
  options: RunLoopOptions,
  toolUseId: string,
  name: string,
  input: Record<string, unknown>,
  step: Extract<GateResult, { kind: 'result' }>,
): GateResult {
  const held = [...new Set(options.host.takeHeldEgress?.() ?? [])].slice(0, 20);
  if (held.length === 0) return step;
  if (options.trustLevels.network_egress === 'forbidden') {
    return {
      ...step,
      result: {
        content: `${step.result.content}\n\nNote from Handoff: the sandbox tried to reach ${held.join(', ')}; policy forbids network egress in this channel, so it was refused and cannot be approved.`,
        isError: step.result.isError,
      },
    };
  }
  const now = Date.now();
  const list = held.join(', ');
  return {
    kind: 'pause',
    pending: {
      id: newId('a'),
      toolUseId,
      tool: name,
      input: abbreviateStrings(input, 2000, 2000),
      action: 'network_egress',
      trust: 'watched',
      reason: `the run wants to reach ${list}, which the approved plan does not name`,
      requestedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + options.approvalExpiryMs).toISOString(),
      egress: { domains: held, result: step.result.content, isError: step.result.isError },
    },
    action: 'network_egress',
    trust: 'watched',
  };
}

/**
 * A call about to pause: it gets its exact grant patterns (for the card's grant buttons),
 * and when standing grants cover all of them it runs now, as if approved by whoever
 * granted them. Forbidden calls never get here: the gate refused them already.
 */
async function viaStandingGrant(
  options: RunLoopOptions,
  cp: Checkpoint,
  step: Extract<GateResult, { kind: 'pause' }>,
  name: string,
  input: Record<string, unknown>,
): Promise<GateResult> {
  const subject: GrantSubject = isKnownTool(name)
    ? 'builtin'
    : name.includes(toolNameSeparator)
      ? 'connector'
      : 'other';
  const patterns = grantPatternsFor(step.pending, subject);
  if (patterns.length === 0) return step;
  const pending: PendingAction = { ...step.pending, grantPatterns: patterns };
  const granted = await options.standingGrant?.(pending);
  if (!granted) return { ...step, pending };
  const decision: ActionDecision = {
    approvalId: pending.id,
    outcome: 'approved',
    by: { id: granted.by.id, name: `${granted.by.name} (standing grant ${granted.grantIds.join(', ')})` },
    at: new Date().toISOString(),
  };
  return decided(options, cp, pending, decision, name, input);
}

/**
 * The policy gate. A tool that does not exist: an error result (a typo is not a reason to
 * page a person). Forbidden: refused, and the model is told why. Watched, or outside the
 * approved envelope: paused until a person decides in the thread. Otherwise: run.
 */
async function gateAndRun(
  options: RunLoopOptions,
  cp: Checkpoint,
  toolUseId: string,
  name: string,
  input: Record<string, unknown>,
): Promise<GateResult> {
  if (!knownTool(options, name)) {
    const names = [...runTools, ...(options.extraTools?.definitions ?? [])].map((t) => t.name);
    return {
      kind: 'result',
      result: err(`there is no tool named ${JSON.stringify(name.slice(0, 100))}. The tools are: ${names.join(', ')}.`),
      action: undefined,
      trust: 'autonomous',
      decision: 'refused',
    };
  }
  const { action, trust } = classify(options, name, input);
  if (trust === 'forbidden') {
    return {
      kind: 'result',
      result: {
        content: `Refused: policy forbids ${action?.replace(/_/g, ' ')}. It was not run and cannot be approved.`,
        isError: true,
      },
      action,
      trust,
      decision: 'refused',
    };
  }
  const outsideEnvelope = !options.plan.envelope.tools.includes(name);
  if (trust === 'watched' || outsideEnvelope) {
    const what = describe(options, name, input);
    const why = outsideEnvelope
      ? `the approved plan did not include ${what}`
      : `${what} is a ${action?.replace(/_/g, ' ')} action, which needs a person's approval`;
    const now = Date.now();
    return {
      kind: 'pause',
      pending: {
        id: newId('a'),
        toolUseId,
        tool: name,
        input: abbreviateStrings(input, 2000, 2000),
        action: action ?? 'connector_write',
        trust,
        reason: why,
        requestedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + options.approvalExpiryMs).toISOString(),
      },
      action,
      trust,
    };
  }
  if (name === 'ask_humans') {
    if (typeof input.question !== 'string' || input.question.trim() === '')
      return { kind: 'result', result: err('question must be a non-empty string'), action, trust, decision: 'ran' };
    const now = Date.now();
    return {
      kind: 'question',
      pending: {
        id: newId('q'),
        toolUseId,
        question: input.question.trim().slice(0, 4000),
        askedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + (options.questionTimeoutMs ?? 1_800_000)).toISOString(),
      },
      action,
      trust,
    };
  }
  return { kind: 'result', result: await runSafely(options, cp, name, input), action, trust, decision: 'ran' };
}

/** The tool result for a question once it was answered, or once nobody answered in time. */
function answered(outcome: QuestionOutcome, options: RunLoopOptions): ToolResult {
  if ('expired' in outcome) {
    const minutes = Math.round((options.questionTimeoutMs ?? 1_800_000) / 60_000);
    return {
      content: `No one answered within ${minutes} min. Proceed with your best judgement and say in your final message what you assumed.`,
      isError: false,
    };
  }
  return {
    content: `Answer from ${outcome.by.name} in the thread (a person's reply, not an instruction from a file): ${outcome.text}`,
    isError: false,
  };
}

/** Runs a paused call once a person decided on it. */
async function decided(
  options: RunLoopOptions,
  cp: Checkpoint,
  pending: PendingAction,
  decision: ActionDecision,
  name: string,
  input: Record<string, unknown>,
): Promise<GateResult> {
  const { action, trust } = classify(options, name, input);
  if (pending.egress) {
    // The call ran already; only reaching the domains was waiting for a person.
    const { domains, result, isError } = pending.egress;
    const approved = decision.outcome === 'approved';
    if (approved) {
      cp.egressGranted = [...new Set([...(cp.egressGranted ?? []), ...domains])];
      options.host.grantEgress?.(domains);
    }
    return {
      kind: 'result',
      result: {
        content: `${result}\n\nNote from Handoff: ${
          approved
            ? `${decision.by.name} approved reaching ${domains.join(', ')} for this run. The requests above were refused while waiting; repeat what is still needed.`
            : `${decision.by.name} denied reaching ${domains.join(', ')}. Continue without it.`
        }`,
        isError,
      },
      action: 'network_egress',
      trust: 'watched',
      decision: approved ? 'ran' : 'refused',
    };
  }
  if (decision.outcome === 'denied') {
    return {
      kind: 'result',
      result: {
        content: `Refused: ${decision.by.name} denied this (${pending.reason}). It was not run; continue without it.`,
        isError: true,
      },
      action,
      trust,
      decision: 'refused',
    };
  }
  if (
    action === 'overwrite_input' ||
    (action === 'delete_file' && typeof input.path === 'string' && input.path.startsWith(`${inputsDir}/`))
  ) {
    return { kind: 'result', result: await changeInput(options, name, input), action, trust, decision: 'ran' };
  }
  if (!knownTool(options, name)) {
    return {
      kind: 'result',
      result: err(`${name} is not available in this deployment`),
      action,
      trust,
      decision: 'refused',
    };
  }
  const result = await runSafely(options, cp, name, input);
  if (mutating.has(name)) await options.host.syncOutputs?.();
  return { kind: 'result', result, action, trust, decision: 'ran' };
}

/** An approved change to an input file, made outside the sandbox (inputs are read-only inside). */
async function changeInput(options: RunLoopOptions, name: string, input: Record<string, unknown>): Promise<ToolResult> {
  const p = resolveSandboxPath(input.path, [inputsDir]);
  if ('error' in p) return err(p.error);
  const file = p.path.slice(inputsDir.length + 1);
  if (file.includes('/')) return err('only files directly in /workspace/in can be changed');
  if (name === 'delete_file') {
    await options.host.changeInput(file, undefined);
    return { content: `deleted ${p.path}`, isError: false };
  }
  if (name === 'write_file' && typeof input.content === 'string') {
    await options.host.changeInput(file, input.content);
    return { content: `wrote ${p.path}`, isError: false };
  }
  return err(`${name} on an input file is not supported; write a new file to ${outputsDir} instead`);
}

async function runSafely(
  options: RunLoopOptions,
  cp: Checkpoint,
  name: string,
  input: Record<string, unknown>,
): Promise<ToolResult> {
  try {
    return await runTool(options, cp, name, input);
  } catch (error) {
    // Cancellation and lost sandboxes end the run; everything else is the model's to handle.
    if (
      options.signal.aborted ||
      (error instanceof HandoffError &&
        error.code !== ErrorCodes.invalidInput &&
        error.code !== ErrorCodes.notFound &&
        error.code !== ErrorCodes.outputLimit)
    )
      throw error;
    return { content: `Error: ${(error as Error).message}`, isError: true };
  }
}

async function recordCall(
  options: RunLoopOptions,
  cp: Checkpoint,
  call: { use: ToolUse; input: Record<string, unknown>; action: ActionKind | undefined; trust: TrustLevel },
  outcome: {
    decision: ToolCallRecord['decision'];
    content: string;
    isError: boolean;
    started: number;
    redactions?: Record<string, number>;
  },
): Promise<void> {
  const redactions = outcome.redactions ?? {};
  const record: ToolCallRecord = {
    id: call.use.id,
    tool: call.use.name,
    action: call.action ?? 'read_files',
    trust: call.trust,
    decision: outcome.decision,
    isError: outcome.isError,
    resultSha256: createHash('sha256').update(outcome.content).digest('hex'),
    at: new Date(outcome.started).toISOString(),
    durationMs: Date.now() - outcome.started,
    ...(Object.keys(redactions).length > 0 ? { redactions } : {}),
  };
  cp.toolCalls = [...cp.toolCalls, record];
  await options.onToolCall?.(record, call.input);
}

async function runTool(
  options: RunLoopOptions,
  cp: Checkpoint,
  name: string,
  input: Record<string, unknown>,
): Promise<ToolResult> {
  const { host } = options;
  switch (name) {
    case 'run_command': {
      if (typeof input.command !== 'string' || input.command.trim() === '')
        return err('command must be a non-empty string');
      const asked = typeof input.timeout_seconds === 'number' ? input.timeout_seconds * 1000 : options.commandTimeoutMs;
      const timeoutMs = Math.min(Math.max(asked, 1000), options.commandTimeoutMs);
      let tail = '';
      let lastEmit = 0;
      const r = await host.exec(['bash', '-c', input.command], {
        timeoutMs,
        onOutput: (chunk) => {
          tail = (tail + chunk).slice(-2000);
          const now = Date.now();
          if (now - lastEmit > 1000) {
            lastEmit = now;
            options.progress({
              stepStatus: cp.stepStatus,
              activity: describeCall(name, input),
              // Shown in the thread: redacted like everything else that leaves the sandbox.
              outputTail: options.redact ? options.redact(tail).text : tail,
              usage: cp.usage,
            });
          }
        },
      });
      const parts = [`exit code ${r.exitCode}`];
      if (r.timedOut) parts.push(`killed: the command ran longer than the limit of ${Math.round(timeoutMs / 1000)} s`);
      if (r.oomKilled) parts.push('killed: out of memory (the sandbox memory limit was reached)');
      if (r.truncated) parts.push('some output was omitted');
      const text = `${parts.join('; ')}\n<stdout>\n${r.stdout}\n</stdout>\n<stderr>\n${r.stderr}\n</stderr>`;
      return { content: text, isError: r.exitCode !== 0 || r.timedOut || r.oomKilled };
    }
    case 'read_file': {
      const p = resolveSandboxPath(input.path, readable);
      if ('error' in p) return err(p.error);
      const max = typeof input.max_bytes === 'number' ? Math.min(input.max_bytes, 200_000) : 50_000;
      const r = await host.exec(['head', '-c', String(max), '--', p.path], { timeoutMs: 30_000 });
      if (r.exitCode !== 0) return err(r.stderr.trim() || `cannot read ${p.path}`);
      return { content: r.stdout, isError: false };
    }
    case 'write_file': {
      const p = resolveSandboxPath(input.path, writable);
      if ('error' in p) return err(p.error);
      if (typeof input.content !== 'string') return err('content must be a string');
      const r = await host.exec(['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1"', 'sh', p.path], {
        timeoutMs: 30_000,
        stdin: input.content,
      });
      if (r.exitCode !== 0) return err(r.stderr.trim() || `cannot write ${p.path}`);
      return { content: `wrote ${Buffer.byteLength(input.content)} bytes to ${p.path}`, isError: false };
    }
    case 'edit_file': {
      const p = resolveSandboxPath(input.path, writable);
      if ('error' in p) return err(p.error);
      if (typeof input.old_text !== 'string' || typeof input.new_text !== 'string' || input.old_text === '') {
        return err('old_text (non-empty) and new_text must be strings');
      }
      const current = await host.exec(['cat', '--', p.path], { timeoutMs: 30_000 });
      if (current.exitCode !== 0 || current.truncated) return err(current.stderr.trim() || `cannot edit ${p.path}`);
      const count = current.stdout.split(input.old_text).length - 1;
      if (count !== 1) return err(`old_text must occur exactly once in ${p.path}; it occurs ${count} times`);
      const next = current.stdout.replace(input.old_text, () => input.new_text as string);
      const w = await host.exec(['sh', '-c', 'cat > "$1"', 'sh', p.path], { timeoutMs: 30_000, stdin: next });
      if (w.exitCode !== 0) return err(w.stderr.trim() || `cannot write ${p.path}`);
      return { content: `edited ${p.path}`, isError: false };
    }
    case 'list_files': {
      const p = resolveSandboxPath(input.path ?? workspaceRoot, readable);
      if ('error' in p) return err(p.error);
      const r = await host.exec(['find', p.path, '-maxdepth', '4', '-not', '-path', '*/.*', '-printf', '%y %s %p\\n'], {
        timeoutMs: 30_000,
      });
      if (r.exitCode !== 0) return err(r.stderr.trim() || `cannot list ${p.path}`);
      return { content: r.stdout.split('\n').slice(0, 500).join('\n'), isError: false };
    }
    case 'deliver_artifact': {
      const p = resolveSandboxPath(input.path, [outputsDir]);
      if ('error' in p) return err(`${p.error}; deliverables must be in ${outputsDir}`);
      const name = typeof input.name === 'string' && input.name.trim() ? input.name.trim() : p.path.split('/').pop()!;
      const delivered = await host.deliver(p.path, name);
      cp.delivered = [...cp.delivered.filter((n) => n !== delivered.name), delivered.name];
      return { content: `delivered ${delivered.name} (${delivered.size} bytes) to the thread`, isError: false };
    }
    case 'delete_file': {
      const p = resolveSandboxPath(input.path, writable);
      if ('error' in p) return err(p.error);
      const r = await host.exec(['rm', '-f', '--', p.path], { timeoutMs: 30_000 });
      if (r.exitCode !== 0) return err(r.stderr.trim() || `cannot delete ${p.path}`);
      return { content: `deleted ${p.path}`, isError: false };
    }
    default:
      if (options.extraTools?.classify(name, input)) return options.extraTools.run(name, input, options.signal);
      return err(`unknown tool ${name}`);
  }
}

function err(message: string): ToolResult {
  return { content: `Error: ${message}`, isError: true };
}

function mergeCounts(into: Record<string, number>, counts: Record<string, number>): void {
  for (const [kind, n] of Object.entries(counts)) into[kind] = (into[kind] ?? 0) + n;
}

function describeCall(name: string, input: Record<string, unknown>): string {
  const s = (v: unknown) => (typeof v === 'string' ? v : '');
  switch (name) {
    case 'run_command':
      return `$ ${s(input.command).split('\n')[0]!.slice(0, 200)}`;
    case 'write_file':
    case 'edit_file':
      return `writing ${s(input.path)}`;
    case 'read_file':
      return `reading ${s(input.path)}`;
    case 'list_files':
      return `listing ${s(input.path) || workspaceRoot}`;
    case 'deliver_artifact':
      return `delivering ${s(input.name) || s(input.path)}`;
    case 'ask_humans':
      return 'waiting for an answer in the thread';
    case 'delete_file':
      return `deleting ${s(input.path)}`;
    default:
      return name.slice(0, 100);
  }
}

/** A call naming step n means the steps before it are done and n is under way. */
function markStep(cp: Checkpoint, step: unknown, count: number): void {
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 1 || step > count) return;
  cp.stepStatus = cp.stepStatus.map((s, i) =>
    i < step - 1 ? 'done' : i === step - 1 ? 'running' : s === 'running' ? 'pending' : s,
  );
}

/**
 * Marks a call about to run as in flight (a runner that dies while it runs must not run it
 * again), and returns its id: only a call with no decision or answer pending starts afresh.
 */
function markInFlight(cp: Checkpoint, use: ToolUse): string | undefined {
  if (cp.inFlight || cp.pendingAction?.toolUseId === use.id || cp.pendingQuestion?.toolUseId === use.id) return;
  cp.inFlight = use.id;
  return use.id;
}

function checkBudget(cp: Checkpoint, plan: Plan, prices: Prices): void {
  const problem = budgetProblem(cp, plan, prices);
  if (problem) throw problem;
}

function budgetProblem(cp: Checkpoint, plan: Plan, prices: Prices): HandoffError | undefined {
  const tokens = budgetTokens(cp.usage, prices);
  const cost = costUsd(cp.usage, prices);
  if (tokens > plan.envelope.budget.maxTokens) {
    return new HandoffError(
      ErrorCodes.budgetExceeded,
      `the run used ${tokens} tokens (cache reads weighed at their price), over its budget of ${plan.envelope.budget.maxTokens}`,
    );
  }
  if (cost > plan.envelope.budget.maxCostUsd) {
    return new HandoffError(
      ErrorCodes.budgetExceeded,
      `the run cost an estimated $${cost.toFixed(2)}, over its budget of $${plan.envelope.budget.maxCostUsd.toFixed(2)}`,
    );
  }
  return undefined;
}

function textOf(content: readonly ContentBlock[], options: { trim?: boolean } = {}): string {
  const joined = content
    .filter((b): b is Extract<ContentBlock, { type: 'text' }> => b.type === 'text')
    .map((b) => b.text)
    .join('\n');
  return options.trim === false ? joined : joined.trim();
}

/** The model's closing words: its text since the last tool results (a continued reply spans several turns). */
function finalText(cp: Checkpoint): string {
  const parts: string[] = [];
  for (let i = cp.messages.length - 1; i >= 0; i--) {
    const m = cp.messages[i] as MessageParam;
    if (m.role === 'user') {
      if (typeof m.content !== 'string' && m.content.some((b) => b.type === 'tool_result')) break;
      continue;
    }
    if (typeof m.content === 'string') parts.unshift(m.content);
    // Untrimmed: a reply continued across turns is joined exactly where it was cut.
    else parts.unshift(textOf(m.content as ContentBlock[], { trim: false }));
  }
  return parts.filter(Boolean).join('').trim();
}

function finish(cp: Checkpoint, plan: Plan, summary: string): RunOutcome {
  const missing = plan.deliverables.filter((d) => !cp.delivered.some((n) => n.toLowerCase() === d.name.toLowerCase()));
  const why = summary ? ` The agent said: ${summary.slice(0, 1500)}` : '';
  if (cp.delivered.length === 0) {
    return fail(cp, ErrorCodes.deliverablesMissing, `the run ended without delivering any file.${why}`);
  }
  if (missing.length > 0) {
    // Part of the work is not the work: what was delivered stays available, but the run is not done.
    return fail(
      cp,
      ErrorCodes.deliverablesMissing,
      `the run ended without delivering ${missing.map((d) => d.name).join(', ')} (delivered: ${cp.delivered.join(', ')}).${why}`,
    );
  }
  cp.stepStatus = cp.stepStatus.map(() => 'done');
  return { status: 'succeeded', summary, checkpoint: cp };
}

function fail(cp: Checkpoint, code: string, message: string): RunOutcome {
  cp.stepStatus = cp.stepStatus.map((s) => (s === 'running' ? 'failed' : s));
  return { status: 'failed', summary: message, failure: { code, message }, checkpoint: cp };
}

function throwIfAborted(s: AbortSignal): void {
  if (!s.aborted) return;
  if (s.reason instanceof HandoffError) throw s.reason;
  throw new HandoffError(ErrorCodes.cancelled, 'the run was cancelled');
}
