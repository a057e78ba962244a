import { describe, expect, it } from 'vitest';
import { type QuestionOutcome, runAgentLoop, type ToolHost } from '../../../src/agent/agent-loop.ts';
import type { ModelRequest } from '../../../src/agent/model/provider.ts';
import type { Redactor } from '../../../src/agent/redactor.ts';
import { defaultTrustLevels } from '../../../src/approvals/index.ts';
import {
  type ActionDecision,
  type Checkpoint,
  HandoffError,
  type Plan,
  redact,
  type Task,
  type ThreadMessage,
  type ToolCallRecord,
} from '../../../src/core/index.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';
import { ScriptedModel, type ScriptedTurn, text, toolUse } from '../../helpers/scripted-model.ts';

/**
 * An in-memory sandbox: a map of files, enough of `sh`/`head`/`cat`/`find` for the loop's
 * tools, and a thread that records what was delivered to it.
 */
class MemoryHost implements ToolHost {
  readonly files = new Map<string, string>([['/workspace/in/data.csv', 'region,amount\nNorth,10\nSouth,20\n']]);
  readonly execs: Array<{ argv: string[]; stdin?: string }> = [];
  readonly delivered: string[] = [];
  onExec?: () => void;

  async exec(argv: string[], options: { timeoutMs: number; stdin?: string }) {
    this.execs.push({ argv, ...(options.stdin === undefined ? {} : { stdin: options.stdin }) });
    this.onExec?.();
    const ok = (stdout: string) => ({
      exitCode: 0,
      stdout,
      stderr: '',
      timedOut: false,
      oomKilled: false,
      truncated: false,
    });
    const fail = (stderr: string) => ({
      exitCode: 1,
      stdout: '',
      stderr,
      timedOut: false,
      oomKilled: false,
      truncated: false,
    });
    const [cmd] = argv;
    if (cmd === 'sh' && argv[1] === '-c' && argv[2]?.includes('cat >')) {
      this.files.set(argv.at(-1)!, options.stdin ?? '');
      return ok('');
    }
    if (cmd === 'head' || cmd === 'cat') {
      const content = this.files.get(argv.at(-1)!);
      return content === undefined ? fail(`${cmd}: ${argv.at(-1)}: No such file or directory`) : ok(content);
    }
    if (cmd === 'find') {
      return ok([...this.files].map(([p, c]) => `f ${c.length} ${p}`).join('\n'));
    }
    if (cmd === 'bash') return ok('');
    return fail(`${cmd}: command not found`);
  }

  async deliver(path: string, name: string) {
    const content = this.files.get(path);
    if (content === undefined) throw new Error(`${path} does not exist`);
    this.delivered.push(name);
    return { name, size: Buffer.byteLength(content) };
  }

  /** Messages people posted in the thread; consumed as the loop marks them seen. */
  readonly said: ThreadMessage[] = [];

  async threadMessages(): Promise<ThreadMessage[]> {
    return [...this.said];
  }

  async consumeThreadMessages(count: number): Promise<void> {
    this.said.splice(0, count);
  }

  async changeInput(name: string, content: string | undefined): Promise<void> {
    if (content === undefined) this.files.delete(`/workspace/in/${name}`);
    else this.files.set(`/workspace/in/${name}`, content);
  }
}

const task: Task = testTask({
  updatedAt: '2025-03-01T09:03:00.000Z',
  request: 'Summarise data.csv into a short markdown report',
  inputs: [
    { name: 'data.csv', mediaType: 'text/csv', size: 33, sha256: 'a'.repeat(64), key: 'in/t_abcdef123/data.csv' },
  ],
  state: 'running',
  planVersion: 1,
  runId: 'r_run123456',
  startedAt: '2025-03-01T09:03:00.000Z',
});

function makePlan(overrides: Partial<Plan['envelope']> = {}): Plan {
  return testPlan(
    {
      version: 1,
      summary: 'Write report.md summarising data.csv.',
      steps: [
        { title: 'Read the data', detail: '', actions: ['read_files'] },
        { title: 'Write the report', detail: '', actions: ['create_files'] },
      ],
      deliverables: [{ name: 'report.md', type: 'md' }],
      estimatedTokens: 20_000,
      estimatedCostUsd: 0.1,
      model: 'scripted-model',
    },
    {
      tools: ['ask_humans', 'read_file', 'write_file', 'edit_file', 'list_files', 'deliver_artifact'],
      deliverableTypes: ['md'],
      budget: { maxTokens: 100_000, maxCostUsd: 5, maxWallTimeMs: 900_000 },
      ...overrides,
    },
  );
}

function freshCheckpoint(): Checkpoint {
  return {
    runId: 'r_run123456',
    taskId: task.id,
    planVersion: 1,
    turn: 0,
    messages: [],
    usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 },
    stepStatus: ['pending', 'pending'],
    toolCalls: [],
    delivered: [],
    partialResults: [],
    notes: [],
    continuations: 0,
    redactions: {},
    startedAt: '2025-03-01T09:03:00.000Z',
    elapsedMs: 0,
  };
}

function setup(
  turns: ScriptedTurn[],
  options: {
    plan?: Plan;
    checkpoint?: Checkpoint;
    signal?: AbortSignal;
    host?: MemoryHost;
    redact?: Redactor;
    maxTokensPerCall?: number;
    onToolCall?: (record: ToolCallRecord) => void;
  } = {},
) {
  const model = new ScriptedModel(turns);
  const host = options.host ?? new MemoryHost();
  const saved: Checkpoint[] = [];
  const run = (resume?: { checkpoint: Checkpoint; decision?: ActionDecision; answer?: QuestionOutcome }) =>
    runAgentLoop({
      provider: model,
      host,
      task,
      plan: options.plan ?? makePlan(),
      checkpoint: resume?.checkpoint ?? options.checkpoint ?? freshCheckpoint(),
      ...(resume?.decision ? { actionDecision: resume.decision } : {}),
      ...(resume?.answer ? { questionOutcome: resume.answer } : {}),
      ...(options.redact ? { redact: options.redact } : {}),
      ...(options.maxTokensPerCall ? { maxTokensPerCall: options.maxTokensPerCall } : {}),
      ...(options.onToolCall ? { onToolCall: options.onToolCall } : {}),
      questionTimeoutMs: 1_800_000,
      approvalExpiryMs: 3_600_000,
      save: async (cp) => {
        saved.push(structuredClone(cp));
      },
      progress: () => undefined,
      signal: options.signal ?? new AbortController().signal,
      commandTimeoutMs: 60_000,
      prices: { inputPerMTok: 3, outputPerMTok: 15, cacheReadPerMTok: 0.3, cacheWritePerMTok: 3.75 },
      trustLevels: defaultTrustLevels,
    });
  return { model, host, saved, run };
}

type ToolResultBlock = { type: 'tool_result'; tool_use_id: string; content: string; is_error?: boolean };

/** The tool results the model was shown at the start of a request. */
function toolResultsIn(request: ModelRequest): ToolResultBlock[] {
  const last = request.messages.at(-1)!;
  expect(last.role).toBe('user');
  return (last.content as ToolResultBlock[]).filter((b) => b.type === 'tool_result');
}

async function rejection(promise: Promise<unknown>): Promise<HandoffError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof HandoffError)) throw new Error(`expected a HandoffError, got ${String(err)}`);
  return err;
}

const report = '# Sales\n\nNorth 10, South 20.\n';
const deliveringRun = [
  [toolUse('tu_1', 'read_file', { path: 'in/data.csv', step: 1 })],
  [toolUse('tu_2', 'write_file', { path: '/workspace/out/report.md', content: report, step: 2 })],
  [toolUse('tu_3', 'deliver_artifact', { path: '/workspace/out/report.md', step: 2 })],
  [text('Made report.md: two regions, 30 in total.')],
];

describe('runAgentLoop', () => {
  it('pauses a watched call (overwriting an input) and runs nothing until a person decides', async () => {
    const { model, host, run } = setup([
      [toolUse('tu_1', 'write_file', { path: '/workspace/in/data.csv', content: 'region,amount\n' })],
      [text('I left the input as it was.')],
    ]);
    const paused = await run();

    expect(paused.status).toBe('paused');
    expect(paused.checkpoint.pendingAction).toMatchObject({
      toolUseId: 'tu_1',
      tool: 'write_file',
      action: 'overwrite_input',
      trust: 'watched',
    });
    expect(paused.checkpoint.pendingAction!.reason).toContain('/workspace/in/data.csv');
    expect(host.files.get('/workspace/in/data.csv')).toBe('region,amount\nNorth,10\nSouth,20\n');
    expect(host.execs).toEqual([]);
    expect(model.requests).toHaveLength(1);

    // Resumed without a decision for this approval: still paused, still nothing run.
    const again = await run({
      checkpoint: paused.checkpoint,
      decision: {
        approvalId: 'a_other',
        outcome: 'approved',
        by: { id: 'u2', name: 'Bo' },
        at: new Date().toISOString(),
      },
    });
    expect(again.status).toBe('paused');
    expect(model.requests).toHaveLength(1);
  });

  it('tells the model who denied a paused call, and leaves the input untouched', async () => {
    const { model, host, run } = setup([
      [toolUse('tu_1', 'write_file', { path: '/workspace/in/data.csv', content: 'x' })],
      [text('Understood, I left the input alone.')],
    ]);
    const paused = await run();
    const decision: ActionDecision = {
      approvalId: paused.checkpoint.pendingAction!.id,
      outcome: 'denied',
      by: { id: 'u2', name: 'Bo' },
      at: new Date().toISOString(),
    };
    const outcome = await run({ checkpoint: paused.checkpoint, decision });

    const [result] = toolResultsIn(model.requests[1]!);
    expect(result).toMatchObject({ tool_use_id: 'tu_1', is_error: true });
    expect(result!.content).toContain('Bo denied this');
    expect(host.files.get('/workspace/in/data.csv')).toContain('North,10');
    expect(outcome.checkpoint.pendingAction).toBeUndefined();
    expect(outcome.checkpoint.toolCalls.map((c) => c.decision)).toEqual(['paused', 'refused']);
  });

  it('runs an approved overwrite outside the sandbox, exactly once', async () => {
    const { model, host, run } = setup([
      [toolUse('tu_1', 'write_file', { path: '/workspace/in/data.csv', content: 'region,amount\nNorth,11\n' })],
      [text('Fixed the input.')],
    ]);
    const paused = await run();
    const decision: ActionDecision = {
      approvalId: paused.checkpoint.pendingAction!.id,
      outcome: 'approved',
      by: { id: 'u2', name: 'Bo' },
      at: new Date().toISOString(),
    };
    await run({ checkpoint: paused.checkpoint, decision });

    expect(host.files.get('/workspace/in/data.csv')).toBe('region,amount\nNorth,11\n');
    expect(toolResultsIn(model.requests[1]!)[0]).toMatchObject({ tool_use_id: 'tu_1' });
    expect(toolResultsIn(model.requests[1]!)[0]!.is_error).toBeUndefined();
  });

  it('pauses a call outside the approved plan and says so', async () => {
    const { host, run } = setup([[toolUse('tu_1', 'run_command', { command: 'curl https://example.com' })]], {
      plan: makePlan({ tools: ['read_file', 'list_files', 'write_file', 'deliver_artifact'] }),
    });
    const outcome = await run();

    expect(host.execs).toEqual([]);
    expect(outcome.status).toBe('paused');
    expect(outcome.checkpoint.pendingAction!.reason).toContain('the approved plan did not include');
  });

  it('refuses a forbidden call outright, and the model is told why', async () => {
    const trust = { ...defaultTrustLevels, run_commands: 'forbidden' as const };
    const model = new ScriptedModel([[toolUse('tu_1', 'run_command', { command: 'true' })], [text('Cannot.')]]);
    const host = new MemoryHost();
    const outcome = await runAgentLoop({
      provider: model,
      host,
      task,
      plan: makePlan({ tools: ['run_command', 'deliver_artifact'] }),
      checkpoint: freshCheckpoint(),
      save: async () => undefined,
      progress: () => undefined,
      signal: new AbortController().signal,
      commandTimeoutMs: 60_000,
      prices: { inputPerMTok: 3, outputPerMTok: 15, cacheReadPerMTok: 0.3, cacheWritePerMTok: 3.75 },
      trustLevels: trust,
      approvalExpiryMs: 60_000,
    });
    expect(host.execs).toEqual([]);
    expect(toolResultsIn(model.requests[1]!)[0]!.content).toContain('policy forbids run commands');
    expect(outcome.status).toBe('failed');
  });

  it('succeeds when the deliverable is delivered, with every step done', async () => {
    const { model, host, saved, run } = setup(deliveringRun);
    const outcome = await run();

    expect(outcome.status).toBe('succeeded');
    expect(outcome.failure).toBeUndefined();
    expect(outcome.summary).toBe('Made report.md: two regions, 30 in total.');
    expect(outcome.checkpoint.stepStatus).toEqual(['done', 'done']);
    expect(outcome.checkpoint.delivered).toEqual(['report.md']);
    expect(host.delivered).toEqual(['report.md']);
    expect(host.files.get('/workspace/out/report.md')).toBe(report);
    expect(outcome.checkpoint.toolCalls.map((c) => [c.tool, c.decision, c.isError])).toEqual([
      ['read_file', 'ran', false],
      ['write_file', 'ran', false],
      ['deliver_artifact', 'ran', false],
    ]);
    // The model saw the input it asked for.
    expect(toolResultsIn(model.requests[1]!)[0]!.content).toContain('North,10');
    // Progress was checkpointed as it went, the last one holding the whole transcript.
    expect(saved.length).toBeGreaterThanOrEqual(4);
    expect(saved.at(-1)!.turn).toBe(4);
    expect(saved.at(-1)!.usage.inputTokens).toBe(4000);
  });

  it('fails a run that delivered only part of the planned deliverables, naming what is missing', async () => {
    const plan = makePlan();
    plan.deliverables = [...plan.deliverables, { name: 'chart.png', type: 'png' }];
    const { run } = setup(deliveringRun, { plan });
    const outcome = await run();

    expect(outcome.status).toBe('failed');
    expect(outcome.failure?.code).toBe('handoff_deliverables_missing');
    expect(outcome.failure?.message).toContain('without delivering chart.png');
    expect(outcome.failure?.message).toContain('delivered: report.md');
  });

  it('fails with handoff_deliverables_missing when the run ends without delivering', async () => {
    const { run } = setup([
      [toolUse('tu_1', 'write_file', { path: 'out/report.md', content: report, step: 2 })],
      [text('All finished!')],
    ]);
    const outcome = await run();

    expect(outcome.status).toBe('failed');
    expect(outcome.failure?.code).toBe('handoff_deliverables_missing');
    expect(outcome.failure?.message).toContain('without delivering');
    expect(outcome.failure?.message).toContain('All finished!');
    expect(outcome.checkpoint.stepStatus).toEqual(['done', 'failed']);
  });

  it('throws handoff_budget_exceeded once the token budget is spent', async () => {
    const plan = makePlan({ budget: { maxTokens: 2000, maxCostUsd: 5, maxWallTimeMs: 900_000 } });
    const { model, saved, run } = setup(
      [[toolUse('tu_1', 'list_files', {})], [toolUse('tu_2', 'list_files', {})], [text('never reached')]],
      { plan },
    );
    const err = await rejection(run());

    expect(err.code).toBe('handoff_budget_exceeded');
    expect(err.message).toContain('2400 tokens');
    expect(err.message).toContain('2000');
    expect(model.requests).toHaveLength(2);
    // The turn that crossed the line is still checkpointed.
    expect(saved.at(-1)!.turn).toBe(2);
  });

  it('throws handoff_cancelled when the signal is aborted before a turn', async () => {
    const controller = new AbortController();
    controller.abort();
    const { model, run } = setup(deliveringRun, { signal: controller.signal });
    const err = await rejection(run());

    expect(err.code).toBe('handoff_cancelled');
    expect(model.requests).toHaveLength(0);
  });

  it('stops before the next turn when cancelled while a tool runs', async () => {
    const controller = new AbortController();
    const { model, host, run } = setup(deliveringRun, { signal: controller.signal });
    host.onExec = () => controller.abort();
    const err = await rejection(run());

    expect(err.code).toBe('handoff_cancelled');
    expect(model.requests).toHaveLength(1);
    expect(host.delivered).toEqual([]);
  });

  it('after a crash mid-call, tells the model the call may have run instead of running it again', async () => {
    const checkpoint: Checkpoint = {
      ...freshCheckpoint(),
      turn: 1,
      inFlight: 'tu_9',
      messages: [
        { role: 'user', content: 'Carry out the approved plan.' },
        { role: 'assistant', content: [toolUse('tu_9', 'write_file', { path: 'out/report.md', content: report })] },
      ],
    };
    const { model, host, run } = setup(deliveringRun.slice(1), { checkpoint });
    await run();

    const [repaired] = toolResultsIn(model.requests[0]!);
    expect(repaired).toMatchObject({ tool_use_id: 'tu_9', is_error: true });
    expect(repaired!.content).toMatch(/may or may not have taken effect/);
    expect(
      host.execs.some(
        (e) => e.stdin === report && e.argv.join(' ').includes('out/report.md') && model.requests.length === 0,
      ),
    ).toBe(false);
  });

  it('has every call checkpointed in flight before it runs, in single and multi-call turns', async () => {
    const { host, saved, run } = setup([
      [toolUse('tu_1', 'read_file', { path: 'in/data.csv', step: 1 })],
      [
        toolUse('tu_2', 'write_file', { path: '/workspace/out/report.md', content: report, step: 2 }),
        toolUse('tu_3', 'list_files', { path: '/workspace/out' }),
        toolUse('tu_4', 'deliver_artifact', { path: '/workspace/out/report.md', step: 2 }),
      ],
      [text('Made report.md.')],
    ]);
    // What the store holds at the moment each command starts.
    const atExec: Array<{ inFlight: string | undefined; lastUse: string | undefined; results: string[] }> = [];
    host.onExec = () => {
      const cp = saved.at(-1)!;
      const last = cp.messages.at(-1) as { role: string; content: Array<{ type: string; id?: string }> };
      atExec.push({
        inFlight: cp.inFlight,
        lastUse: last.role === 'assistant' ? last.content.find((b) => b.id === cp.inFlight)?.id : undefined,
        results: cp.partialResults.map((r) => r.tool_use_id),
      });
    };
    const outcome = await run();

    expect(outcome.status).toBe('succeeded');
    expect(atExec.map((e) => e.inFlight)).toEqual(['tu_1', 'tu_2', 'tu_3']);
    // The call in flight is one the saved reply asked for, and earlier results of its turn are saved with it.
    expect(atExec.map((e) => e.lastUse)).toEqual(['tu_1', 'tu_2', 'tu_3']);
    expect(atExec.map((e) => e.results)).toEqual([[], [], ['tu_2']]);
    // No write marks a call in flight on its own: each also holds a reply or a result.
    for (let i = 1; i < saved.length; i++) {
      const before = saved[i - 1]!;
      const after = saved[i]!;
      const onlyMarked =
        after.inFlight !== undefined &&
        before.inFlight === undefined &&
        after.messages.length === before.messages.length &&
        after.partialResults.length === before.partialResults.length;
      expect(onlyMarked, `write ${i} only marked ${after.inFlight} in flight`).toBe(false);
    }
  });

  it('after a crash before a call started, runs it (it never ran)', async () => {
    const checkpoint: Checkpoint = {
      ...freshCheckpoint(),
      turn: 1,
      messages: [
        { role: 'user', content: 'Carry out the approved plan.' },
        { role: 'assistant', content: [toolUse('tu_9', 'write_file', { path: 'out/report.md', content: report })] },
      ],
    };
    const { model, host, run } = setup(deliveringRun.slice(2), { checkpoint });
    const outcome = await run();

    expect(host.files.get('/workspace/out/report.md')).toBe(report);
    expect(toolResultsIn(model.requests[0]!)[0]!.is_error).toBeUndefined();
    expect(outcome.status).toBe('succeeded');
  });

  it('redacts every tool result before the model sees it or it is checkpointed, and counts it per call', async () => {
    const host = new MemoryHost();
    host.files.set(
      '/workspace/in/customers.csv',
      'name,email\nDana,dana@example.com\nKey: sk-ant-api03-ABCDEFGHIJKLMNOPQRSTUVWX\n',
    );
    const records: ToolCallRecord[] = [];
    const { model, saved, run } = setup(
      [[toolUse('tu_1', 'read_file', { path: '/workspace/in/customers.csv', step: 1 })], [text('Nothing to deliver.')]],
      {
        host,
        redact: (t) => {
          const r = redact(t, ['email', 'secret']);
          return { text: r.text, counts: r.counts };
        },
        onToolCall: (record) => {
          records.push(record);
        },
      },
    );
    await run();

    const seen = toolResultsIn(model.requests[1]!)[0]!.content;
    expect(seen).toContain('[redacted:email]');
    expect(seen).not.toContain('dana@example.com');
    expect(seen).not.toContain('ABCDEFGHIJKLMNOPQRSTUVWX');
    expect(JSON.stringify(saved)).not.toContain('dana@example.com');
    expect(JSON.stringify(saved)).not.toContain('ABCDEFGHIJKLMNOPQRSTUVWX');
    expect(records[0]!.redactions).toEqual({ email: 1, secret: 1 });
    expect(saved.at(-1)!.redactions).toMatchObject({ email: 1, secret: 1 });
  });

  it('answers a call to a tool that does not exist with an error result, not an approval request', async () => {
    const { model, host, run } = setup([[toolUse('tu_1', 'raed_file', { path: 'in/data.csv' })], ...deliveringRun]);
    const outcome = await run();

    expect(outcome.status).toBe('succeeded');
    expect(outcome.checkpoint.pendingAction).toBeUndefined();
    const [result] = toolResultsIn(model.requests[1]!);
    expect(result).toMatchObject({ tool_use_id: 'tu_1', is_error: true });
    expect(result!.content).toContain('there is no tool named "raed_file"');
    expect(result!.content).toContain('read_file');
    expect(outcome.checkpoint.toolCalls[0]).toMatchObject({ tool: 'raed_file', decision: 'refused' });
    expect(host.execs.length).toBeGreaterThan(0);
  });

  it('continues a reply cut off at max_tokens and keeps the whole closing text', async () => {
    const { model, run } = setup([
      ...deliveringRun.slice(0, 3),
      { content: [text('Made report.md: two regions, ')], stopReason: 'max_tokens' },
      [text('30 in total.')],
    ]);
    const outcome = await run();

    expect(outcome.status).toBe('succeeded');
    expect(outcome.summary).toBe('Made report.md: two regions, 30 in total.');
    const last = model.requests.at(-1)!.messages.at(-1)!;
    expect(last.role).toBe('user');
    expect(JSON.stringify(last.content)).toContain('cut off at the length limit');
  });

  it('asks again with more room when a tool call is cut off at max_tokens, without running it', async () => {
    const { model, host, run } = setup(
      [
        { content: [toolUse('tu_x', 'write_file', { path: '/workspace/out/report.md' })], stopReason: 'max_tokens' },
        ...deliveringRun,
      ],
      { maxTokensPerCall: 1000 },
    );
    const outcome = await run();

    expect(outcome.status).toBe('succeeded');
    expect(model.requests[0]!.maxTokens).toBe(1000);
    expect(model.requests[1]!.maxTokens).toBe(2000);
    expect(model.requests[2]!.maxTokens).toBe(1000);
    // The cut-off call never ran and never entered the transcript.
    expect(JSON.stringify(model.requests.at(-1)!.messages)).not.toContain('tu_x');
    expect(host.execs.every((e) => e.stdin !== undefined || !e.argv.join(' ').includes('tu_x'))).toBe(true);
  });

  it('fails clearly when replies keep being cut off at max_tokens', async () => {
    const cut = { content: [text('and so on')], stopReason: 'max_tokens' };
    const { model, run } = setup([cut, cut, cut, cut, cut]);
    const outcome = await run();

    expect(outcome.status).toBe('failed');
    expect(outcome.failure?.code).toBe('handoff_model_truncated');
    expect(outcome.failure?.message).toContain('cut off at its length limit');
    expect(model.requests).toHaveLength(4);
  });

  it('fails with the reason when the model refuses, even after delivering', async () => {
    const { run } = setup([
      ...deliveringRun.slice(0, 3),
      { content: [text('I cannot help with the rest of this.')], stopReason: 'refusal' },
    ]);
    const outcome = await run();

    expect(outcome.status).toBe('failed');
    expect(outcome.failure?.code).toBe('handoff_model_refused');
    expect(outcome.failure?.message).toContain('I cannot help with the rest of this.');
  });

  it('continues a paused turn (pause_turn) by sending it back as it is', async () => {
    const { model, run } = setup([
      ...deliveringRun.slice(0, 3),
      { content: [text('Working on the summary…')], stopReason: 'pause_turn' },
      [text(' Made report.md.')],
    ]);
    const outcome = await run();

    expect(outcome.status).toBe('succeeded');
    const sent = model.requests.at(-1)!.messages;
    expect(sent.at(-1)!.role).toBe('assistant');
    expect(outcome.summary).toBe('Working on the summary… Made report.md.');
  });

  it('fails when the model stops for a reason it cannot continue from', async () => {
    const { run } = setup([
      ...deliveringRun.slice(0, 3),
      { content: [text('The context is full')], stopReason: 'model_context_window_exceeded' },
    ]);
    const outcome = await run();

    expect(outcome.status).toBe('failed');
    expect(outcome.failure?.code).toBe('handoff_model_stopped');
    expect(outcome.failure?.message).toContain('model_context_window_exceeded');
  });

  it('parks on a question and gives the model exactly the answer bound to it, redacted', async () => {
    const { model, run } = setup(
      [
        [toolUse('tu_q', 'ask_humans', { question: 'Which month?' })],
        [toolUse('tu_1', 'write_file', { path: '/workspace/out/report.md', content: report, step: 2 })],
        [toolUse('tu_2', 'deliver_artifact', { path: '/workspace/out/report.md', step: 2 })],
        [text('Done with March.')],
      ],
      {
        redact: (t) => {
          const r = redact(t, ['email']);
          return { text: r.text, counts: r.counts };
        },
      },
    );
    const asked = await run();
    expect(asked.status).toBe('paused');
    const question = asked.checkpoint.pendingQuestion!;
    expect(question).toMatchObject({ toolUseId: 'tu_q', question: 'Which month?' });
    expect(Date.parse(question.expiresAt) - Date.parse(question.askedAt)).toBe(1_800_000);
    expect(model.requests).toHaveLength(1);

    // An answer to some other question does not wake it.
    const other = await run({
      checkpoint: asked.checkpoint,
      answer: { questionId: 'q_other', by: { id: 'u2', name: 'Bo' }, text: 'thanks!', at: new Date().toISOString() },
    });
    expect(other.status).toBe('paused');
    expect(model.requests).toHaveLength(1);

    const done = await run({
      checkpoint: asked.checkpoint,
      answer: {
        questionId: question.id,
        by: { id: 'u2', name: 'Bo' },
        text: 'March, and mail bo@example.com',
        at: new Date().toISOString(),
      },
    });
    expect(done.status).toBe('succeeded');
    const result = toolResultsIn(model.requests[1]!)[0]!;
    expect(result.tool_use_id).toBe('tu_q');
    expect(result.content).toContain('Answer from Bo');
    expect(result.content).toContain('March');
    expect(result.content).not.toContain('bo@example.com');
  });

  it('tells the model nobody answered when the question expired', async () => {
    const { model, run } = setup([[toolUse('tu_q', 'ask_humans', { question: 'Which month?' })], ...deliveringRun]);
    const asked = await run();
    await run({
      checkpoint: asked.checkpoint,
      answer: { questionId: asked.checkpoint.pendingQuestion!.id, expired: true },
    });
    expect(toolResultsIn(model.requests[1]!)[0]!.content).toContain('No one answered within 30 min');
  });

  it('hands thread messages to the model at its next turn, redacted, and marks them seen once saved', async () => {
    const host = new MemoryHost();
    const { model, saved, run } = setup(deliveringRun, {
      host,
      redact: (t) => {
        const r = redact(t, ['phone']);
        return { text: r.text, counts: r.counts };
      },
    });
    host.onExec = () => {
      if (host.said.length === 0 && host.execs.length === 1)
        host.said.push({
          by: { id: 'u_ana', name: 'Ana' },
          text: 'Only North, please. Call +44 20 7946 0958',
          at: new Date().toISOString(),
        });
    };
    await run();

    const second = JSON.stringify(model.requests[1]!.messages.at(-1));
    expect(second).toContain('Only North, please.');
    expect(second).toContain('thread_message from=\\"Ana\\"');
    expect(second).not.toContain('7946');
    expect(host.said).toEqual([]);
    expect(JSON.stringify(saved)).not.toContain('7946');
    // Only once: the next turn does not repeat it.
    expect(JSON.stringify(model.requests[2]!.messages.at(-1))).not.toContain('Only North');
  });

  it('weighs cache reads at their price against the token budget', async () => {
    const plan = makePlan({ budget: { maxTokens: 50_000, maxCostUsd: 5, maxWallTimeMs: 900_000 } });
    const cached = { inputTokens: 1000, outputTokens: 200, cacheReadTokens: 100_000, cacheWriteTokens: 0 };
    const turns: ScriptedTurn[] = deliveringRun.map((content) => ({
      content,
      stopReason: content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn',
      usage: cached,
    }));
    const { run } = setup(turns, { plan });
    // 4 turns × (1,200 + 100,000 × 0.1) = 44,800 weighed tokens: within 50,000, though 404,800 were read.
    const outcome = await run();
    expect(outcome.status).toBe('succeeded');
    expect(outcome.checkpoint.usage.cacheReadTokens).toBe(400_000);

    const tight = makePlan({ budget: { maxTokens: 30_000, maxCostUsd: 5, maxWallTimeMs: 900_000 } });
    const again = setup(turns, { plan: tight });
    const err = await rejection(again.run());
    expect(err.code).toBe('handoff_budget_exceeded');
  });

  it('ends a resumed run whose last turn already ended, without asking the model again', async () => {
    const first = setup(deliveringRun);
    const done = await first.run();
    const { model, run } = setup([], { checkpoint: done.checkpoint });
    const again = await run();
    expect(again.status).toBe('succeeded');
    expect(model.requests).toHaveLength(0);
  });
});
