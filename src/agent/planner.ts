import { createHash } from 'node:crypto';
import type { z } from 'zod';
import {
  addUsage,
  type ChannelContext,
  ErrorCodes,
  HandoffError,
  type PlanDraft,
  PlanDraftSchema,
  type Task,
  type Usage,
  zeroUsage,
} from '../core/index.ts';
import { traceModelCall } from '../observability/index.ts';
import type { ToolHost } from './agent-loop.ts';
import { channelContextMessage } from './channel-context.ts';
import type { ContentBlock, MessageParam, ModelProvider } from './model/provider.ts';
import { type PlanReach, type PlanRevision, plannerSystem, taskMessage } from './prompts.ts';
import { applyRedactor, type Redactor } from './redactor.ts';
import { planTools, resolveSandboxPath, workspaceRoot } from './tools.ts';

export interface PlannerOptions {
  provider: ModelProvider;
  /** Read-only look at the inputs (exec in a read-only sandbox). */
  host: Pick<ToolHost, 'exec'>;
  task: Task;
  signal: AbortSignal;
  maxTurns?: number;
  /** Applied to the request and to what the model reads while planning. */
  redact?: Redactor;
  /** For a revision: the plan it replaces and the changes people asked for. */
  previous?: PlanRevision;
  /** max_tokens of each planning call. Default 4096; a plan cut off is asked again with twice the room. */
  maxTokensPerCall?: number;
  /** What the channel lets a plan reach beyond its files (connector tools, web domains). */
  reach?: PlanReach;
  /** The channel's instructions and memory, placed before the request. */
  channel?: ChannelContext;
}

export interface PlannerResult {
  draft: PlanDraft;
  usage: Usage;
  /** sha256 of the exact first prompt sent to the model (system + request), for the audit trail. */
  promptSha256: string;
  /** How many of each kind of sensitive text were redacted. */
  redactions: Record<string, number>;
}

/**
 * One planning conversation: the model may look at the inputs, then must call
 * submit_plan with a plan that validates. A malformed plan is sent back once with the
 * reasons; a second malformed plan fails the task with a clear message.
 */
export async function draftPlan(options: PlannerOptions): Promise<PlannerResult> {
  const { provider, host, task, signal } = options;
  const system = plannerSystem();
  const counts = { redactions: {} as Record<string, number> };
  const clean = (text: string) => applyRedactor(options.redact, counts.redactions, text);
  const messages: MessageParam[] = [
    {
      role: 'user',
      content: clean(
        channelContextMessage(options.channel) + taskMessage(task, 'plan', options.previous, options.reach),
      ),
    },
  ];
  const promptSha256 = createHash('sha256').update(JSON.stringify({ system, messages })).digest('hex');
  let usage = zeroUsage;
  let invalidPlans = 0;
  let silentReplies = 0;
  let cutOff = 0;
  const maxTurns = options.maxTurns ?? 8;
  let maxTokens = options.maxTokensPerCall ?? 4096;

  for (let turn = 0; turn < maxTurns; turn++) {
    if (signal.aborted) throw new HandoffError(ErrorCodes.cancelled, 'planning was cancelled');
    const lastChance = turn === maxTurns - 1;
    const response = await traceModelCall(provider.model, () =>
      provider.createMessage(
        {
          system,
          messages,
          tools: planTools,
          maxTokens,
          ...(lastChance ? { toolChoice: { type: 'tool' as const, name: 'submit_plan' } } : {}),
        },
        signal,
      ),
    );
    usage = addUsage(usage, response.usage);
    if (response.stopReason === 'refusal') {
      const said = textOf(response.content);
      throw new HandoffError(
        ErrorCodes.modelRefused,
        `the model declined to plan this request${said ? `: ${said.slice(0, 1000)}` : ''}`,
      );
    }
    if (response.stopReason === 'max_tokens') {
      // A plan cut off mid-arguments is not a plan: ask again with room to finish it.
      cutOff += 1;
      if (cutOff > 2) {
        throw new HandoffError(
          ErrorCodes.modelTruncated,
          `the model's plan was cut off at its length limit (${maxTokens} tokens) ${cutOff} times; raise HANDOFF_MAX_TOKENS_PER_CALL`,
        );
      }
      maxTokens = Math.min(maxTokens * 2, 64_000);
      turn -= 1;
      continue;
    }
    messages.push({ role: 'assistant', content: response.content });
    const uses = response.content.filter(
      (b): b is Extract<ContentBlock, { type: 'tool_use' }> => b.type === 'tool_use',
    );

    if (uses.length === 0) {
      silentReplies += 1;
      if (silentReplies >= 2) {
        throw new HandoffError(ErrorCodes.planInvalid, 'the model did not produce a plan; try rephrasing the request');
      }
      messages.push({ role: 'user', content: 'Please call submit_plan with the plan now.' });
      continue;
    }

    const results: Array<{ type: 'tool_result'; tool_use_id: string; content: string; is_error?: boolean }> = [];
    for (const use of uses) {
      if (use.name === 'submit_plan') {
        const parsed = PlanDraftSchema.safeParse(use.input);
        if (parsed.success) return { draft: parsed.data, usage, promptSha256, redactions: counts.redactions };
        invalidPlans += 1;
        if (invalidPlans >= 2) {
          throw new HandoffError(
            ErrorCodes.planInvalid,
            `the model's plan could not be understood twice (${describeIssues(parsed.error)}); try rephrasing the request`,
          );
        }
        results.push({
          type: 'tool_result',
          tool_use_id: use.id,
          is_error: true,
          content: `The plan is not valid: ${describeIssues(parsed.error)}. Fix these and call submit_plan again.`,
        });
        continue;
      }
      const looked = await lookAtInputs(host, use.name, use.input);
      results.push({ type: 'tool_result', tool_use_id: use.id, ...looked, content: clean(looked.content) });
    }
    messages.push({ role: 'user', content: results });
  }
  throw new HandoffError(ErrorCodes.planInvalid, 'the model did not finish planning within its turns');
}

async function lookAtInputs(
  host: Pick<ToolHost, 'exec'>,
  name: string,
  input: unknown,
): Promise<{ content: string; is_error?: boolean }> {
  const args = (input ?? {}) as Record<string, unknown>;
  const target = resolveSandboxPath(args.path ?? workspaceRoot, [workspaceRoot]);
  if ('error' in target) return { content: `Error: ${target.error}`, is_error: true };
  const argv =
    name === 'read_file'
      ? ['head', '-c', '20000', '--', target.path]
      : name === 'list_files'
        ? ['find', target.path, '-maxdepth', '3', '-printf', '%y %s %p\\n']
        : undefined;
  if (!argv) return { content: `Error: ${name} is not available while planning`, is_error: true };
  const r = await host.exec(argv, { timeoutMs: 30_000 });
  if (r.exitCode !== 0) return { content: `Error: ${r.stderr.trim() || 'failed'}`, is_error: true };
  return { content: r.stdout };
}

function textOf(content: readonly ContentBlock[]): string {
  return content
    .filter((b): b is Extract<ContentBlock, { type: 'text' }> => b.type === 'text')
    .map((b) => b.text)
    .join('\n')
    .trim();
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 6)
    .map((i) => `${i.path.join('.') || 'plan'}: ${i.message}`)
    .join('; ');
}
