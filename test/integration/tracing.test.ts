import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, tracingExportStats } from '../../src/observability/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { type FakeOtlpCollector, type RecordedSpan, startOtlpCollector } from '../fakes/otlp-server.ts';
import { Cluster, freePort } from '../helpers/cluster.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff } from '../helpers/handoff.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
// A phrase that exists only in the request (and so in the prompt): no span may carry it.
const marker = 'quarterly-marker-zq81';
const request = `@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart (${marker})`;

/** Every attribute value of every span, as text, for the "nothing private" checks. */
function attributeText(spans: RecordedSpan[]): string {
  return spans.map((s) => JSON.stringify(s.attributes)).join('\n');
}

describeDocker('tracing: one trace per task across a bot and a runner process (OTLP/HTTP)', () => {
  let collector: FakeOtlpCollector;
  let redis: EmbeddedRedis;
  let cluster: Cluster | undefined;
  let dir: string;
  let secrets: string[] = [];

  beforeAll(async () => {
    collector = await startOtlpCollector();
    dir = await mkdtemp(join(tmpdir(), 'handoff-tracing-'));
    redis = await startRedisServer({ dir: join(dir, 'redis'), port: await freePort() });
  });
  afterAll(async () => {
    await cluster?.stopAll();
    await redis?.stop();
    await collector?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('joins request, plan, approval, run, model calls, tool calls, sandbox execs and delivery in one trace', async () => {
    cluster = await Cluster.start({
      bots: 1,
      runners: 1,
      redisUrl: redis.url,
      dataDir: join(dir, 'data'),
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_SERVICE_NAME: '' },
      log: (line) => process.stderr.write(`${line}\n`),
    });
    const bot = cluster.bots[0]!;
    const ana = await cluster.signIn('Ana');
    const bo = await cluster.signIn('Bo');
    secrets = [cluster.env.HANDOFF_SIGNING_SECRET!, ana.split('=')[1]!, bo.split('=')[1]!];

    const posted = await cluster.client(bot, ana).post(request, [{ name: 'sales.csv', path: salesCsv }]);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await cluster.client(bot, ana).waitForCard(thread, (h) => h.includes('card plan'), 180_000);
    const approve = await cluster.client(bot, bo).action({ action: 'approve', ...planButtons(card.html!) });
    expect(approve.status).toBe(200);
    const result = await cluster.client(bot, ana).waitForCard(thread, (h) => h.includes('card result'), 240_000);
    expect(links(result.html!).map((l) => l.name)).toEqual(['sales-summary.xlsx']);

    // SIGTERM: each process flushes what it buffered before it exits.
    await cluster.stopAll();
    cluster = undefined;
    const spans = collector.spans;
    expect(collector.refused).toEqual([]);

    // One trace: every span the task made, in either process, has its trace id.
    const request_ = spans.find((s) => s.name === 'task.request');
    expect(request_, `spans: ${spans.map((s) => s.name).join(', ')}`).toBeDefined();
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([request_!.traceId]));
    expect(request_!.service).toBe('handoff-bot');
    expect(request_!.parentSpanId).toBe('');

    // Every span but the request has its parent among them: nothing is cut loose.
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (const s of spans) if (s !== request_) expect(byId.get(s.parentSpanId), `parent of ${s.name}`).toBeDefined();
    const parentName = (s: RecordedSpan) => byId.get(s.parentSpanId)?.name;

    const named = (name: string) => spans.filter((s) => s.name === name);
    const [plan] = named('plan');
    expect(plan?.service).toBe('handoff-runner');
    expect(parentName(plan!)).toBe('task.request');
    const [approved] = named('plan.approved');
    expect(approved?.service).toBe('handoff-bot');
    expect(parentName(approved!)).toBe('task.request');
    const runs = named('run');
    expect(runs.length).toBeGreaterThanOrEqual(1);
    for (const r of runs) expect(parentName(r)).toBe('plan.approved');
    const [posted_] = named('deliverable.post');
    expect(posted_?.service).toBe('handoff-bot');
    expect(parentName(posted_!)).toBe('task.request');

    // Model calls under the plan and under the run, with the model id and token counts.
    const models = named('model.call');
    expect(new Set(models.map(parentName))).toEqual(new Set(['plan', 'run']));
    for (const m of models) {
      expect(m.attributes['gen_ai.request.model']).toBe('demo');
      expect(typeof m.attributes['gen_ai.usage.input_tokens']).toBe('number');
      expect(typeof m.attributes['gen_ai.usage.output_tokens']).toBe('number');
    }

    // Tool calls under the run, each with its level and decision; commands in the sandbox under them.
    const tools = named('tool.call');
    expect(tools.length).toBeGreaterThanOrEqual(2);
    for (const t of tools) {
      expect(parentName(t)).toBe('run');
      expect(t.attributes['handoff.tool.trust']).toMatch(/^(autonomous|batched|watched|forbidden)$/);
      expect(t.attributes['handoff.tool.decision']).toBe('ran');
    }
    expect(tools.map((t) => t.attributes['handoff.tool.name'])).toEqual(
      expect.arrayContaining(['run_command', 'deliver_artifact']),
    );
    const execs = named('sandbox.exec');
    expect(execs.some((e) => parentName(e) === 'tool.call')).toBe(true);
    expect(execs.some((e) => parentName(e) === 'plan')).toBe(true);
    for (const e of execs) {
      expect(typeof e.attributes['process.exit.code']).toBe('number');
      expect(typeof e.attributes['handoff.sandbox.duration_ms']).toBe('number');
    }
    expect(named('sandbox.create').map(parentName).sort()).toEqual(['plan', 'run']);
    const [upload] = named('artifact.upload');
    expect(parentName(upload!)).toBe('tool.call');
    expect(upload!.attributes['handoff.artifact.size_bytes']).toBeGreaterThan(0);

    // Nothing private in any attribute: not the request (the prompt), not the input's
    // contents, not the signing secret or a session.
    const text = attributeText(spans);
    expect(text).not.toContain(marker);
    expect(text).not.toContain('summarise the attached');
    const csvLine = (await readFile(salesCsv, 'utf8')).split('\n')[1]!;
    expect(csvLine.length).toBeGreaterThan(5);
    expect(text).not.toContain(csvLine);
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toContain('sales.csv');
    expect(text).not.toContain('sales-summary');

    // Every span and attribute here is in the table of docs/operations.md (Tracing).
    const docs = await readFile(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const table = docs.slice(docs.indexOf('## Tracing'));
    for (const name of new Set(spans.map((s) => s.name))) expect(table).toContain(`| \`${name}\` |`);
    for (const key of new Set(spans.flatMap((s) => Object.keys(s.attributes)))) expect(table).toContain(`\`${key}\``);
  }, 600_000);
});

describeDocker('tracing: a collector that is down', () => {
  const lines: Array<{ level: number; msg: string; trace_id?: string }> = [];
  const saved = { ...process.env };

  beforeAll(() => {
    // Exports every 100 ms and gives up on each after 300 ms, so a down collector fails many times in one task.
    process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
    process.env.OTEL_EXPORTER_OTLP_TIMEOUT = '300';
  });
  afterAll(() => {
    process.env = saved;
  });

  it('lets the task complete and logs one warning, not one per failed export', async () => {
    const closed = await freePort();
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    });
    const handoff = await startDevHandoff({
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`, LOG_LEVEL: 'info' },
      logger: createLogger('info', 'handoff-test', { destination }),
    });
    let failures = 0;
    try {
      const client = new ConsoleClient(handoff.url);
      const posted = await client.post(request, [{ name: 'sales.csv', path: salesCsv }]);
      expect(posted.status).toBe(201);
      const thread = posted.body.message!.id;
      const card = await client.waitForCard(thread, (h) => h.includes('card plan'), 180_000);
      expect((await client.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);
      const result = await client.waitForCard(thread, (h) => h.includes('card result'), 240_000);
      expect(result.html).toContain('Done');
      expect(links(result.html!).map((l) => l.name)).toEqual(['sales-summary.xlsx']);
      failures = tracingExportStats()?.failures ?? 0;
    } finally {
      await handoff.close();
    }
    // The exports really failed, again and again…
    expect(failures).toBeGreaterThanOrEqual(2);
    // …and the log says so once.
    const otlp = lines.filter((l) => /OTLP|opentelemetry/i.test(l.msg));
    expect(otlp.filter((l) => l.level === 40)).toHaveLength(1);
    expect(otlp.filter((l) => l.level >= 50)).toEqual([]);
    // Lines written inside a traced request carry its trace id.
    expect(lines.some((l) => /^[0-9a-f]{32}$/.test(l.trace_id ?? ''))).toBe(true);
  }, 600_000);
});

describeDocker('tracing: a fan-out under `handoff dev`', () => {
  it("puts each workstream, with its model and tool calls, under the run's span in the task's trace", async () => {
    const collector = await startOtlpCollector();
    try {
      const handoff = await startDevHandoff({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url } });
      try {
        const client = new ConsoleClient(handoff.url);
        const posted = await client.post(
          '@handoff build a workbook from the attached sales CSV with one sheet per region',
          [{ name: 'sales.csv', path: salesCsv }],
        );
        const thread = posted.body.message!.id;
        const card = await client.waitForCard(thread, (h) => h.includes('card plan'), 180_000);
        expect((await client.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);
        const result = await client.waitForCard(thread, (h) => h.includes('card result'), 300_000);
        expect(result.html).toContain('Done');
      } finally {
        await handoff.close(); // flushes the spans
      }
      const spans = collector.spans;
      expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['handoff-dev']));
      expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
      const byId = new Map(spans.map((s) => [s.spanId, s]));
      const parentName = (s: RecordedSpan) => byId.get(s.parentSpanId)?.name;
      const streams = spans.filter((s) => s.name === 'workstream');
      expect(streams.map((w) => w.attributes['handoff.workstream.id']).sort()).toEqual(
        expect.arrayContaining(['east', 'north', 'south', 'west']),
      );
      for (const w of streams) expect(parentName(w)).toBe('run');
      const underStreams = spans.filter((s) => parentName(s) === 'workstream').map((s) => s.name);
      expect(underStreams).toEqual(expect.arrayContaining(['model.call', 'tool.call', 'sandbox.create']));
    } finally {
      await collector.close();
    }
  }, 600_000);
});

describe('tracing off', () => {
  it('has no exporter and adds nothing to job data or log lines', async () => {
    const { startTracing, traceField, traceLogFields, withSpan } = await import('../../src/observability/index.ts');
    const tracing = await startTracing({ url: undefined, serviceName: 'x', logger: createLogger('silent') });
    expect(tracing.enabled).toBe(false);
    expect(tracingExportStats()).toBeUndefined();
    const inside = await withSpan('task.request', {}, async () => ({ ...traceField(), ...traceLogFields() }));
    expect(inside).toEqual({});
    await tracing.shutdown();
  });
});
