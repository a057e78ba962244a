import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { type RunningHandoff, startHandoff } from '../../src/main.ts';
import { createLogger } from '../../src/observability/index.ts';
import { metricQueueNames, queueNames, runIdFor } from '../../src/queue/index.ts';
import { DockerSandboxDriver } from '../../src/runner/index.ts';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { FakeSlack } from '../fakes/slack-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker, sandboxImage } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';
import { matching, type Sample, scrape, total } from '../helpers/prometheus.ts';

const apiKey = 'sk-ant-metrics-test-key';
const slackToken = 'xoxb-metrics-test-token';
const slackSigningSecret = 'slack-signing-secret-for-metrics-test';
// Every model reply reports this, so the token counters have exact expected values.
const usage = { input_tokens: 100, output_tokens: 10, cache_read_input_tokens: 50, cache_creation_input_tokens: 20 };

const plan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Write summary.md from the notes.',
        steps: [{ title: 'Write it', actions: ['read_files', 'run_commands', 'create_files'] }],
        deliverables: [{ name: 'summary.md', type: 'md' }],
      },
    },
  ],
  usage,
};
const call = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input }],
  usage,
});

/** Every label value of every sample, with where it was seen. */
const labelValues = (samples: Sample[]) =>
  samples.flatMap((s) => Object.entries(s.labels).map(([k, v]) => ({ at: `${s.name}{${k}}`, value: v })));

describeDocker('Prometheus metrics of a real task (dev: bot and runner in one process)', () => {
  let model: FakeAnthropicServer;
  let slack: FakeSlack;
  let handoff: TestHandoff;
  let ana: ConsoleClient;
  let taskId: string;
  let after: Sample[];

  beforeAll(async () => {
    model = await startFakeAnthropic({ apiKey });
    slack = new FakeSlack({ botToken: slackToken, users: { UANA: { name: 'Ana' } } });
    await slack.start();
    handoff = await startDevHandoff({
      env: {
        ANTHROPIC_API_KEY: apiKey,
        ANTHROPIC_BASE_URL: model.url,
        // Slack is configured too: its calls (auth.test at start) are counted on the same registry.
        SLACK_BOT_TOKEN: slackToken,
        SLACK_SIGNING_SECRET: slackSigningSecret,
        SLACK_API_URL: slack.apiUrl,
      },
    });
    ana = new ConsoleClient(handoff.url, 'Ana');

    model.enqueue(
      plan,
      call('run_command', { command: 'echo "# Summary" > /workspace/out/summary.md', step: 1 }),
      call('deliver_artifact', { path: '/workspace/out/summary.md' }),
      { content: [{ type: 'text', text: 'Made summary.md.' }], usage },
    );
    const posted = await ana.post('@handoff summarise the notes', [
      { name: 'notes.md', content: Buffer.from('notes\n') },
    ]);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const buttons = planButtons(card.html!);
    taskId = buttons.taskId;
    expect((await ana.action({ action: 'approve', ...buttons })).status).toBe(200);
    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    expect(links(result.html!).map((l) => l.name)).toEqual(['summary.md']);
    // `handoff dev` on loopback serves /metrics on its own port.
    after = await scrape(`${handoff.url}/metrics`);
  }, 240_000);

  afterAll(async () => {
    await handoff?.close();
    await model?.close();
    await slack?.close();
  });

  it('counts the task by surface and every state it went through', () => {
    expect(total(after, 'handoff_tasks_created_total', { surface: 'web' })).toBe(1);
    const moves = matching(after, 'handoff_task_transitions_total', { surface: 'web' })
      .map((s) => `${s.labels.from}>${s.labels.to}=${s.value}`)
      .sort();
    expect(moves).toEqual(
      [
        'requested>planning=1',
        'planning>awaiting_approval=1',
        'awaiting_approval>queued=1',
        'queued>running=1',
        'running>succeeded=1',
      ].sort(),
    );
  });

  it('times planning, the approval wait and the run, and counts the run by outcome', () => {
    expect(total(after, 'handoff_plan_duration_seconds_count')).toBe(1);
    expect(total(after, 'handoff_approval_wait_seconds_count', { kind: 'plan', outcome: 'approved' })).toBe(1);
    expect(total(after, 'handoff_runs_started_total', { surface: 'web' })).toBe(1);
    expect(total(after, 'handoff_runs_finished_total', { surface: 'web', outcome: 'succeeded' })).toBe(1);
    expect(total(after, 'handoff_runs_finished_total', { outcome: 'failed' })).toBe(0);
    expect(total(after, 'handoff_run_duration_seconds_count', { outcome: 'succeeded' })).toBe(1);
    expect(total(after, 'handoff_run_duration_seconds_sum', { outcome: 'succeeded' })).toBeGreaterThan(0);
  });

  it('counts tool calls by action kind, trust level and decision', () => {
    expect(
      total(after, 'handoff_tool_calls_total', { kind: 'run_commands', trust_level: 'batched', decision: 'ran' }),
    ).toBe(1);
    // Both calls of the run are counted, each with a trust level and a decision.
    const calls = matching(after, 'handoff_tool_calls_total');
    expect(calls.reduce((n, s) => n + s.value, 0)).toBe(2);
    for (const s of calls) {
      expect(s.labels.trust_level).toMatch(/^(autonomous|batched|watched|forbidden)$/);
      expect(s.labels.decision).toMatch(/^(ran|refused|paused)$/);
    }
  });

  it('times sandbox creation (planning and run) and every command in them', () => {
    expect(total(after, 'handoff_sandbox_create_seconds_count', { outcome: 'ok' })).toBeGreaterThanOrEqual(2);
    expect(total(after, 'handoff_sandbox_exec_seconds_count')).toBeGreaterThan(0);
    expect(total(after, 'handoff_sandbox_exec_seconds_count', { outcome: 'ok' })).toBeGreaterThan(0);
  });

  it('times every model request: the plan and the run replies', () => {
    // One planning reply and three run replies, as below.
    expect(total(after, 'handoff_model_request_seconds_count', { outcome: 'ok' })).toBe(4);
    expect(total(after, 'handoff_model_request_seconds_count', { outcome: 'error' })).toBe(0);
    expect(total(after, 'handoff_model_request_seconds_sum')).toBeGreaterThan(0);
  });

  it('counts model tokens by type and the estimated cost, by channel', () => {
    // One planning reply and three run replies, each reporting `usage`.
    const where = { surface: 'web', channel: 'general' };
    expect(total(after, 'handoff_model_tokens_total', { type: 'input', ...where })).toBe(400);
    expect(total(after, 'handoff_model_tokens_total', { type: 'output', ...where })).toBe(40);
    expect(total(after, 'handoff_model_tokens_total', { type: 'cache_read', ...where })).toBe(200);
    expect(total(after, 'handoff_model_tokens_total', { type: 'cache_write', ...where })).toBe(80);
    expect(total(after, 'handoff_model_cost_usd_total', where)).toBeGreaterThan(0);
  });

  it('shows the depth and oldest-job age of every queue, read at scrape time', () => {
    for (const queue of Object.keys(metricQueueNames)) {
      for (const state of ['waiting', 'active', 'delayed'])
        expect(matching(after, 'handoff_queue_jobs', { queue, state }), `${queue} ${state}`).toHaveLength(1);
      expect(matching(after, 'handoff_queue_oldest_waiting_age_seconds', { queue }), queue).toHaveLength(1);
    }
    expect(Object.keys(metricQueueNames).sort()).toEqual([
      'inbox_slack',
      'inbox_teams',
      'notify',
      'plan',
      'run',
      'schedule',
      'workstream',
    ]);
  });

  it('times audit appends and counts Slack API calls', () => {
    expect(total(after, 'handoff_audit_append_seconds_count', { outcome: 'ok' })).toBeGreaterThan(5);
    // auth.test at start (Bolt's and the surface's own check), through the bot's WebClient.
    expect(
      total(after, 'handoff_chat_api_calls_total', { surface: 'slack', method: 'auth.test', outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
    expect(total(after, 'handoff_chat_api_calls_total', { surface: 'slack', outcome: 'error' })).toBe(0);
  });

  it('carries no task id, run id, person or secret in any label', () => {
    const forbidden = [taskId, runIdFor(taskId, 1), apiKey, slackToken, slackSigningSecret, 'Ana', 'UANA'];
    const values = labelValues(after);
    expect(values.length).toBeGreaterThan(50);
    for (const { at, value } of values) {
      for (const f of forbidden) expect(value, at).not.toContain(f);
      // Ids Handoff makes (`t_…`, `r_…`), tokens and keys have no place in a label.
      expect(value, at).not.toMatch(/^[a-z]_[A-Za-z0-9_-]{12}$/);
      expect(value, at).not.toMatch(/sk-ant|xox[abpr]-|bearer/i);
    }
  });
});

describeDocker('`handoff runner` serves /healthz, /readyz and /metrics on HANDOFF_METRICS_PORT', () => {
  const token = 'metrics-token-0123456789abcdef';
  const prefix = `metrics-runner-${randomBytes(4).toString('hex')}`;
  let handoff: TestHandoff;
  let dataDir: string;
  let runner: RunningHandoff;
  const env = () => ({
    REDIS_URL: handoff.redisUrl,
    HANDOFF_DATA_DIR: dataDir,
    HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
    HANDOFF_METRICS_PORT: '0',
    HANDOFF_METRICS_TOKEN: token,
    HANDOFF_SANDBOX_IMAGE: sandboxImage,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  });

  beforeAll(async () => {
    // A dev instance only for its Redis; the runner works on queues of its own prefix.
    handoff = await startDevHandoff();
    dataDir = await mkdtemp(join(tmpdir(), 'handoff-metrics-runner-'));
    const config = loadConfig({ env: env(), file: '/dev/null' });
    runner = await startHandoff({
      config,
      mode: 'runner',
      queuePrefix: prefix,
      logger: createLogger(config.logLevel, 'handoff-test'),
    });
  }, 60_000);

  afterAll(async () => {
    await runner?.close();
    await handoff?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('answers /healthz and /readyz (workers connected, Docker answering) without a token', async () => {
    expect(runner.url).toBeUndefined();
    expect(runner.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${runner.metricsUrl}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${runner.metricsUrl}/readyz`);
    expect(await ready.json()).toEqual({ ok: true });
    expect(ready.status).toBe(200);
  });

  it('serves /metrics only with the bearer token, with queue depth and the oldest waiting job’s age', async () => {
    const without = await fetch(`${runner.metricsUrl}/metrics`);
    expect(without.status).toBe(401);
    // A notify job: the runner has no worker for it, so it stays waiting. Added "a minute ago".
    const notify = new Queue(queueNames.notify, { connection: { url: handoff.redisUrl }, prefix });
    try {
      await notify.add(
        'event',
        { type: 'result', taskId: 't_metricsrunner', runId: 'x' },
        { timestamp: Date.now() - 60_000 },
      );
      const samples = await scrape(`${runner.metricsUrl}/metrics`, token);
      expect(total(samples, 'handoff_queue_jobs', { queue: 'notify', state: 'waiting' })).toBe(1);
      expect(total(samples, 'handoff_queue_oldest_waiting_age_seconds', { queue: 'notify' })).toBeGreaterThanOrEqual(
        60,
      );
      for (const queue of Object.keys(metricQueueNames))
        expect(matching(samples, 'handoff_queue_jobs', { queue, state: 'waiting' }), queue).toHaveLength(1);
      expect(total(samples, 'handoff_queue_oldest_waiting_age_seconds', { queue: 'plan' })).toBe(0);
      // The runner's own process metrics are there too, and its readiness as last checked.
      expect(matching(samples, 'process_resident_memory_bytes')).toHaveLength(1);
      expect(total(samples, 'handoff_runner_ready')).toBe(1);
    } finally {
      await notify.obliterate({ force: true });
      await notify.close();
    }
  });

  it('is not ready while Docker does not answer, and says so', async () => {
    const config = loadConfig({ env: env(), file: '/dev/null' });
    const broken = await startHandoff({
      config,
      mode: 'runner',
      queuePrefix: `${prefix}-nodocker`,
      logger: createLogger('silent', 'handoff-test'),
      driver: new DockerSandboxDriver({
        image: sandboxImage,
        docker: new Dockerode({ socketPath: join(dataDir, 'no-docker.sock') }),
        sandboxUser: '1000:1000',
      }),
    });
    try {
      expect((await fetch(`${broken.metricsUrl}/healthz`)).status).toBe(200);
      const ready = await fetch(`${broken.metricsUrl}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { reason: string }).reason).toMatch(/Docker/);
      expect(total(await scrape(`${broken.metricsUrl}/metrics`, token), 'handoff_runner_ready')).toBe(0);
    } finally {
      await broken.close();
    }
    // Stopped with the runner: nothing listens there any more.
    await expect(fetch(`${broken.metricsUrl}/healthz`)).rejects.toThrow();
  });
});
