// Connector call overhead: 200 calls of a read tool on a real MCP server over stdio, made
// (a) directly with the MCP SDK's client and (b) through Handoff: the agent loop's policy
// gate, redaction, untrusted-content framing, the audit record appended to a real
// redis-server, and the connector hub's client. The model is an in-memory script that asks
// for one call per turn, so what is measured is Handoff's own work around the call.
// Rounds alternate A B A B; the figure is the ratio of per-call medians.
//
//   BENCH_CONNECTOR_CALLS=200 BENCH_CONNECTOR_ROUNDS=3
//   BENCH_NO_AUDIT=1 leaves the audit append out, to see what it costs on its own.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  abbreviateStrings,
  ConnectorHub,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  runAgentLoop,
} from '../src/agent/index.ts';
import { defaultTrustLevels } from '../src/approvals/index.ts';
import { parseConnectors } from '../src/config/index.ts';
import { type Checkpoint, type Plan, type Task, zeroUsage } from '../src/core/index.ts';
import { extraToolsFor } from '../src/runner/run-tools.ts';
import {
  AuditLog,
  closeConnection,
  createRecordConnection,
  startRedisServer,
  waitForReady,
} from '../src/storage/index.ts';
import { summary } from './stats.ts';

const calls = Number(process.env.BENCH_CONNECTOR_CALLS ?? 200);
const rounds = Number(process.env.BENCH_CONNECTOR_ROUNDS ?? 3);
const server = fileURLToPath(new URL('../test/fakes/mcp-stdio-server.mjs', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-connectors-'));
const redisServer = await startRedisServer({ dir });
const redis = createRecordConnection(redisServer.url);
await waitForReady(redis);
const audit = new AuditLog(redis);
const config = parseConnectors({ records: { command: process.execPath, args: [server] } }, 'handoff.yaml')[0]!;

/** A/B: the same 200 calls straight through the SDK client. */
async function direct(): Promise<number[]> {
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [server], stderr: 'pipe' }));
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await client.callTool({ name: 'lookup', arguments: { id: String(i) } });
    times.push(performance.now() - t);
  }
  await client.close();
  return times;
}

/** The model asks for one lookup per turn, then ends; each turn's time between tool calls is Handoff's. */
class OneCallPerTurn implements ModelProvider {
  readonly name = 'bench';
  readonly model = 'bench';
  readonly demo = false;
  n = 0;
  async createMessage(_request: ModelRequest): Promise<ModelResponse> {
    const i = this.n++;
    const content =
      i < calls
        ? [
            {
              type: 'tool_use' as const,
              id: `toolu_${i}`,
              name: 'records__lookup',
              input: { id: String(i) },
              caller: { type: 'direct' as const },
            },
          ]
        : [{ type: 'text' as const, text: 'done', citations: null }];
    return { content, stopReason: i < calls ? 'tool_use' : 'end_turn', usage: zeroUsage, model: this.model };
  }
}

async function throughHandoff(): Promise<number[]> {
  const hub = await ConnectorHub.open({ configs: [config], policy: { trustLevels: defaultTrustLevels } });
  const plan = {
    taskId: 't_bench',
    version: 1,
    summary: 'bench',
    steps: [{ title: 'look up', detail: '', actions: ['connector_read'] }],
    deliverables: [{ name: 'x.md', type: 'md' }],
    envelope: {
      tools: ['records__lookup'],
      egressDomains: [],
      mayOverwrite: [],
      mayDelete: [],
      deliverableTypes: ['md'],
      budget: { maxTokens: 1e12, maxCostUsd: 1e9, maxWallTimeMs: 3_600_000 },
      connectors: [
        { name: 'records__lookup', connector: 'records', tool: 'lookup', action: 'connector_read', trust: 'batched' },
      ],
    },
    estimatedTokens: 0,
    estimatedCostUsd: 0,
    model: 'bench',
    demo: false,
    createdAt: new Date().toISOString(),
  } as Plan;
  const task = { id: 't_bench', request: 'bench', requester: { id: 'u', name: 'U' }, inputs: [] } as unknown as Task;
  const checkpoint = {
    runId: 'r_bench',
    taskId: task.id,
    planVersion: 1,
    turn: 0,
    messages: [],
    usage: zeroUsage,
    stepStatus: ['pending'],
    toolCalls: [],
    delivered: [],
    partialResults: [],
    notes: [],
    continuations: 0,
    redactions: {},
    startedAt: new Date().toISOString(),
    elapsedMs: 0,
  } as Checkpoint;
  const times: number[] = [];
  await runAgentLoop({
    provider: new OneCallPerTurn(),
    host: {
      exec: async () => ({ exitCode: 0, stdout: '', stderr: '', timedOut: false, oomKilled: false, truncated: false }),
      deliver: async () => ({ name: 'x', size: 0 }),
      changeInput: async () => undefined,
    },
    task,
    plan,
    checkpoint,
    save: async () => undefined,
    progress: () => undefined,
    onToolCall: async (record, input) => {
      times.push(record.durationMs);
      if (!process.env.BENCH_NO_AUDIT)
        await audit.append({
          type: 'tool.call',
          taskId: task.id,
          data: { ...record, input: abbreviateStrings(input, 500, 200) },
        });
    },
    signal: new AbortController().signal,
    commandTimeoutMs: 60_000,
    prices: { inputPerMTok: 0, outputPerMTok: 0, cacheReadPerMTok: 0, cacheWritePerMTok: 0 },
    trustLevels: defaultTrustLevels,
    approvalExpiryMs: 60_000,
    maxTurns: calls + 5,
    extraTools: extraToolsFor(hub, plan.envelope, undefined, 'watched')!,
  });
  await hub.close();
  return times;
}

/** Per call as Handoff records it: gate to result, audit write excluded, so it is timed separately. */
async function timedHandoff(): Promise<number[]> {
  const started = performance.now();
  const before = await redis.llen('hf:audit');
  const perCall = await throughHandoff();
  const total = performance.now() - started;
  const appended = (await redis.llen('hf:audit')) - before;
  if (!process.env.BENCH_NO_AUDIT && appended !== calls)
    throw new Error(`expected ${calls} audit records, got ${appended}`);
  // Whole-loop time per call (gate + client + redaction + framing + audit + loop bookkeeping).
  return [total / calls, ...perCall];
}

const ratios: number[] = [];
try {
  await direct(); // warm-up: module loading, the server's first start
  for (let r = 1; r <= rounds; r++) {
    const a = direct().then((t) => ({ t, total: t.reduce((x, y) => x + y, 0) }));
    const baseline = await a;
    const handoff = await timedHandoff();
    const [loopPerCall, ...inGate] = handoff;
    const base = summary(baseline.t);
    const gate = summary(inGate);
    const ratio = loopPerCall! / (baseline.total / calls);
    ratios.push(ratio);
    console.log(
      `round ${r}: direct SDK median ${base.median.toFixed(2)} ms/call (mean ${(baseline.total / calls).toFixed(2)}) · through Handoff median ${gate.median.toFixed(2)} ms/call inside the gate, ${loopPerCall!.toFixed(2)} ms/call for the whole loop${process.env.BENCH_NO_AUDIT ? ' (no audit)' : ' with audit'} · ratio ${ratio.toFixed(2)}×`,
    );
  }
  const s = summary(ratios);
  console.log(
    `connector call overhead (${calls} calls, ${rounds} rounds): median ratio ${s.median.toFixed(2)}× (min ${s.min.toFixed(2)}, max ${s.max.toFixed(2)})`,
  );
} finally {
  await closeConnection(redis);
  await redisServer.stop();
  await rm(dir, { recursive: true, force: true });
}
