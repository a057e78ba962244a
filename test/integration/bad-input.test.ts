import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { type ConsoleMessage, ConsoleUsers } from '../../src/bot/surfaces/web/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { startHandoff } from '../../src/main.ts';
import { createLogger } from '../../src/observability/index.ts';
import { DockerSandboxDriver } from '../../src/runner/index.ts';
import { AuditLog, type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker, sandboxImage, sandboxUser } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const repoRoot = new URL('../../', import.meta.url).pathname;
const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
const salesRequest = '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart';
const taskLabel = 'org.handoff.task';

// --- the scripted model ---------------------------------------------------------------

interface ToolCall {
  name: string;
  input: Record<string, unknown>;
}
interface RunSoFar {
  /** Every tool call the model made in this run, oldest first. */
  calls: ToolCall[];
  /** The text of the tool results in the newest user message. */
  lastResult: string;
}
type Block = { type: string; text?: string; name?: string; input?: unknown; content?: unknown };
type Message = { role: string; content: string | Block[] };

function blocks(m: Message | undefined): Block[] {
  return Array.isArray(m?.content) ? m.content : [];
}

function resultText(b: Block): string {
  if (typeof b.content === 'string') return b.content;
  return Array.isArray(b.content) ? (b.content as Block[]).map((c) => c.text ?? '').join('\n') : '';
}

/** Every tool_result text the fake was sent, in any request. */
function toolResultsSeen(fake: FakeAnthropicServer): string[] {
  const seen = new Set<string>();
  for (const r of fake.requests) {
    const messages = (Array.isArray(r.body.messages) ? r.body.messages : []) as Message[];
    for (const m of messages) for (const b of blocks(m)) if (b.type === 'tool_result') seen.add(resultText(b));
  }
  return [...seen];
}

const planDraft = {
  summary: 'Run the commands the request needs and write report.md.',
  steps: [
    { title: 'Run the commands', detail: 'In the sandbox.', actions: ['read_files', 'run_commands', 'create_files'] },
  ],
  deliverables: [{ name: 'report.md', type: 'md' }],
};

/**
 * Planning always submits `planDraft`; a run's turns come from `run`, which sees the calls
 * made so far and the newest tool results.
 */
function scriptModel(fake: FakeAnthropicServer, run: (sofar: RunSoFar) => FakeReply): void {
  fake.setHandler((body) => {
    const tools = (Array.isArray(body.tools) ? body.tools : []) as Array<{ name: string }>;
    if (tools.some((t) => t.name === 'submit_plan')) {
      return { content: [{ type: 'tool_use', name: 'submit_plan', input: planDraft }] };
    }
    const messages = (Array.isArray(body.messages) ? body.messages : []) as Message[];
    const calls = messages
      .filter((m) => m.role === 'assistant')
      .flatMap(blocks)
      .filter((b) => b.type === 'tool_use')
      .map((b) => ({ name: b.name ?? '', input: (b.input ?? {}) as Record<string, unknown> }));
    const lastResult = blocks(messages.at(-1))
      .filter((b) => b.type === 'tool_result')
      .map(resultText)
      .join('\n');
    return run({ calls, lastResult });
  });
}

const command = (cmd: string): FakeReply => ({
  content: [
    { type: 'text', text: 'Running it.' },
    { type: 'tool_use', name: 'run_command', input: { command: cmd, step: 1 } },
  ],
});
const tool = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input: { ...input, step: 1 } }],
});
const say = (text: string): FakeReply => ({ content: [{ type: 'text', text }] });

// --- HTTP helpers -------------------------------------------------------------------------

/** A multipart body written by hand, so the server receives file names exactly as given. */
async function postRawMultipart(
  url: string,
  fields: Record<string, string>,
  files: Array<{ name: string; content: string }>,
): Promise<{ status: number; body: { error?: string; taskId?: string } }> {
  const boundary = `----handoff-test-${randomBytes(8).toString('hex')}`;
  let body = '';
  for (const [name, value] of Object.entries(fields)) {
    body += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  }
  for (const f of files) {
    body += `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${f.name}"\r\nContent-Type: text/csv\r\n\r\n${f.content}\r\n`;
  }
  body += `--${boundary}--\r\n`;
  const res = await fetch(`${url}/api/console/messages`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, origin: new URL(url).origin },
    body,
  });
  return { status: res.status, body: (await res.json()) as { error?: string; taskId?: string } };
}

/**
 * The console client for `handoff bot` with per-person sign-in: each request carries the
 * personal token of the person it is made as (`Authorization: Bearer`), so the server, not
 * the body, says who they are.
 */
class TokenConsoleClient extends ConsoleClient {
  private as: string;

  constructor(
    url: string,
    private readonly tokens: Record<string, string>,
    author = 'Ana',
  ) {
    super(url, author);
    this.as = author;
  }

  override async action(body: Record<string, unknown>, author = this.author) {
    this.as = author;
    try {
      return await super.action(body, author);
    } finally {
      this.as = this.author;
    }
  }

  protected override headers() {
    return { authorization: `Bearer ${this.tokens[this.as]}` };
  }
}

/** Every file (not directory) under `dir`, relative to it; [] when it does not exist. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) found.push(...(await filesUnder(dir, rel)));
    else found.push(rel);
  }
  return found.sort();
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

// --- the suite -------------------------------------------------------------------------

describeDocker('bad input and failures, through the HTTP API', () => {
  const docker = new Dockerode();
  /** Closed newest first after each test. */
  let cleanups: Array<() => Promise<unknown>> = [];
  /** Run after `cleanups` (a Redis restarted by the test outlives the Handoff using it). */
  let lateCleanups: Array<() => Promise<unknown>> = [];
  let taskIds: string[] = [];

  async function containersOf(taskId: string) {
    return docker.listContainers({ all: true, filters: { label: [`${taskLabel}=${taskId}`] } });
  }

  afterEach(async () => {
    const steps = [...cleanups.reverse(), ...lateCleanups];
    const ids = taskIds;
    cleanups = [];
    lateCleanups = [];
    taskIds = [];
    // Containers first: a job stuck in a command would otherwise keep its runner from closing.
    for (const id of ids) {
      for (const c of await containersOf(id).catch(() => [])) {
        await docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
      }
    }
    for (const step of steps) {
      // Bounded, so one stuck step cannot keep the rest from running.
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('did not finish within 20 s')), 20_000);
      });
      await Promise.race([step(), limit])
        .catch((err: unknown) => process.stderr.write(`cleanup step failed: ${String(err)}\n`))
        .finally(() => clearTimeout(timer));
    }
  });

  async function dev(options: Parameters<typeof startDevHandoff>[0] = {}): Promise<TestHandoff> {
    const handoff = await startDevHandoff(options);
    cleanups.push(() => handoff.close());
    return handoff;
  }

  async function fakeModel(run: (sofar: RunSoFar) => FakeReply): Promise<FakeAnthropicServer> {
    const fake = await startFakeAnthropic();
    cleanups.push(() => fake.close());
    scriptModel(fake, run);
    return fake;
  }

  const modelEnv = (fake: FakeAnthropicServer) => ({
    ANTHROPIC_API_KEY: 'sk-ant-test-key',
    ANTHROPIC_BASE_URL: fake.url,
    HANDOFF_MODEL: 'claude-test',
  });

  /** Posts a request, waits for its plan card and approves it as `approver`. */
  async function requestAndApprove(client: ConsoleClient, text: string, approver = client.author) {
    const posted = await client.post(`@handoff ${text}`);
    expect(posted.status, posted.body.error).toBe(201);
    const thread = posted.body.message!.id;
    const taskId = posted.body.taskId!;
    taskIds.push(taskId);
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const approved = await client.action({ action: 'approve', ...planButtons(card.html!) }, approver);
    expect(approved.status, approved.body.error).toBe(200);
    return { thread, taskId };
  }

  it('1. refuses an upload over the size limit with 413, naming the file and the limit; no task is created', async () => {
    const handoff = await dev({ env: { HANDOFF_MAX_UPLOAD_BYTES: '2000' } });
    const client = new ConsoleClient(handoff.url);
    const before = await client.messages();

    const posted = await client.post('@handoff summarise this file', [
      { name: 'big.csv', content: Buffer.alloc(5000, 'a,b\n') },
    ]);

    expect(posted.status).toBe(413);
    expect(posted.body.error).toContain('big.csv');
    expect(posted.body.error).toContain('over the upload limit of 2.0 KB');
    expect(posted.body.taskId).toBeUndefined();
    expect(await client.messages()).toEqual(before);
    // Nothing of the refused file was kept.
    expect(await filesUnder(join(handoff.dataDir, 'artifacts'))).toEqual([]);
  }, 180_000);

  it('2. refuses file names with a path (../evil.csv, /etc/passwd) with 400 and the reason', async () => {
    const handoff = await dev();
    const client = new ConsoleClient(handoff.url);
    const before = await client.messages();
    const fields = { channel: 'general', author: 'Ana', text: '@handoff summarise this file' };

    for (const name of ['../evil.csv', '/etc/passwd']) {
      const res = await postRawMultipart(handoff.url, fields, [{ name, content: 'a,b\n1,2\n' }]);
      expect(res.status, name).toBe(400);
      expect(res.body.error).toBe(`"${name}" was refused: the file name must not contain a path (/ or \\)`);
      expect(res.body.taskId).toBeUndefined();
    }
    expect(await client.messages()).toEqual(before);
    expect(await filesUnder(join(handoff.dataDir, 'artifacts'))).toEqual([]);
  }, 180_000);

  it('3. refuses an empty request (@handoff alone, or with only whitespace) with 400', async () => {
    const handoff = await dev();
    const client = new ConsoleClient(handoff.url);
    const before = await client.messages();

    for (const text of ['@handoff', '  @handoff \t\n  ']) {
      const res = await client.post(text);
      expect(res.status, JSON.stringify(text)).toBe(400);
      expect(res.body.error).toBe('the request is empty: say what you need done');
    }
    const blank = await client.post('   \n\t ');
    expect(blank.status).toBe(400);
    expect(blank.body.error).toBe('the message is empty');
    expect(await client.messages()).toEqual(before);
  }, 180_000);

  it('4. answers 503 while Redis is down; afterwards earlier tasks are intact and new requests work', async () => {
    const handoff = await dev();
    const client = new ConsoleClient(handoff.url);
    const redisPort = Number(new URL(handoff.redisUrl).port);
    const redisDir = join(handoff.dataDir, 'redis');

    // A task accepted before the outage, planned and waiting for approval.
    const earlier = await client.post(salesRequest, [{ name: 'sales.csv', path: salesCsv }]);
    expect(earlier.status).toBe(201);
    const earlierThread = earlier.body.message!.id;
    taskIds.push(earlier.body.taskId!);
    await client.waitForCard(earlierThread, (h) => h.includes('card plan'), 60_000);
    await client.waitForCard(earlierThread, (h) => h.includes('ready for approval'), 10_000);
    const before = await client.messages();
    const filesBefore = await filesUnder(join(handoff.dataDir, 'artifacts'));

    // Redis goes away (SIGTERM: it writes its AOF and exits, as on a restart).
    const probe = new Redis(handoff.redisUrl, { maxRetriesPerRequest: 0 });
    const pid = Number(/process_id:(\d+)/.exec(await probe.info('server'))?.[1]);
    probe.disconnect();
    expect(pid).toBeGreaterThan(0);
    let restarted: EmbeddedRedis | undefined;
    // Stopped after Handoff closed; restarted even when an assertion below fails, so nothing
    // keeps reconnecting to a port another test's Redis may get.
    lateCleanups.push(async () => restarted?.stop());
    process.kill(pid, 'SIGTERM');
    try {
      await until('Redis to stop', async () => ((await portRefuses(redisPort)) ? true : undefined), 15_000);

      const during = await client.post(salesRequest, [{ name: 'sales.csv', path: salesCsv }]);
      expect(during.status).toBe(503);
      expect(during.body.error).toBe(
        'Handoff cannot reach its database (Redis) right now; nothing was saved. Try again shortly.',
      );
      const listing = await fetch(`${handoff.url}/api/console/messages?channel=general`);
      expect(listing.status).toBe(503);
      expect(((await listing.json()) as { error: string }).error).toMatch(/^Handoff cannot reach its database/);
      // The refused request's file was not kept.
      expect(await filesUnder(join(handoff.dataDir, 'artifacts'))).toEqual(filesBefore);
    } finally {
      // Redis comes back on the same port with the same data.
      restarted = await startRedisServer({ dir: redisDir, port: redisPort });
    }

    const after = await until(
      'the console to read Redis again',
      async () => {
        const res = await fetch(`${handoff.url}/api/console/messages?channel=general`);
        return res.status === 200 ? ((await res.json()) as { messages: ConsoleMessage[] }).messages : undefined;
      },
      30_000,
    );
    expect(after).toEqual(before);

    // The earlier task still runs to the end...
    const card = await client.waitForCard(earlierThread, (h) => h.includes('card plan'), 1000);
    const approve = await client.action({ action: 'approve', ...planButtons(card.html!) });
    expect(approve.status, approve.body.error).toBe(200);
    const result = await client.waitForCard(earlierThread, (h) => h.includes('card result'), 120_000);
    expect(result.html).toContain('Done');
    expect(links(result.html!).map((l) => l.name)).toEqual(['sales-summary.xlsx']);

    // ...and a new request is accepted and planned.
    const next = await client.post(salesRequest, [{ name: 'sales.csv', path: salesCsv }]);
    expect(next.status, next.body.error).toBe(201);
    taskIds.push(next.body.taskId!);
    await client.waitForCard(next.body.message!.id, (h) => h.includes('card plan'), 60_000);
  }, 180_000);

  it('5. refuses stale and forged approvals with 409; a denied plan cannot be approved later', async () => {
    const handoff = await dev();
    const client = new ConsoleClient(handoff.url);
    const posted = await client.post(salesRequest, [{ name: 'sales.csv', path: salesCsv }]);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    taskIds.push(posted.body.taskId!);
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const buttons = planButtons(card.html!);

    const oldVersion = await client.action({ action: 'approve', ...buttons, planVersion: buttons.planVersion + 1 });
    expect(oldVersion.status).toBe(409);
    expect(oldVersion.body.error).toBe('this card shows an outdated plan version; use the latest card');

    const lastChar = buttons.planHash.at(-1) === '0' ? '1' : '0';
    const wrongHash = await client.action({
      action: 'approve',
      ...buttons,
      planHash: `${buttons.planHash.slice(0, -1)}${lastChar}`,
    });
    expect(wrongHash.status).toBe(409);
    expect(wrongHash.body.error).toBe('this card does not match the current plan; use the latest card');

    const forged = await client.action({ action: 'approve', ...buttons, planHash: randomBytes(32).toString('hex') });
    expect(forged.status).toBe(409);
    expect(forged.body.error).toBe('this card does not match the current plan; use the latest card');

    // Nothing was approved: the card still offers the buttons.
    const still = await client.waitForCard(thread, (h) => h.includes('card plan'), 1000);
    expect(still.html).toContain('data-action="approve"');
    expect(still.html).not.toContain('Approved');

    const deny = await client.action({ action: 'deny', ...buttons });
    expect(deny.status, deny.body.error).toBe(200);
    expect(deny.body.message).toBe('Denied: nothing will run.');
    const denied = await client.waitForCard(thread, (h) => h.includes('Denied by Ana'), 10_000);
    expect(denied.html).not.toContain('data-action="approve"');

    const late = await client.action({ action: 'approve', ...buttons });
    expect(late.status).toBe(409);
    expect(late.body.error).toBe('this plan was already denied by Ana');
    expect((await client.thread(thread)).some((m) => m.html?.includes('card result'))).toBe(false);
  }, 180_000);

  it('6. Cancel during a running command ends the run as Cancelled and removes its container', async () => {
    const fake = await fakeModel(({ calls }) => (calls.length === 0 ? command('sleep 600') : say('unexpected')));
    const handoff = await dev({ env: modelEnv(fake) });
    const client = new ConsoleClient(handoff.url);
    const { thread, taskId } = await requestAndApprove(client, 'sleep for a long time');

    await client.waitForCard(thread, (h) => h.includes('card progress') && h.includes('$ sleep 600'), 60_000);
    await until(
      'the run container',
      async () => ((await containersOf(taskId)).some((c) => c.State === 'running') ? true : undefined),
      30_000,
    );
    await new Promise((r) => setTimeout(r, 1000)); // let the command start
    const requestsBefore = fake.requests.length;

    const clicked = Date.now();
    const cancel = await client.action({ action: 'cancel', taskId });
    expect(cancel.status, cancel.body.error).toBe(200);
    expect(cancel.body.message).toBe('Cancelling: the run stops within seconds.');

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 10_000);
    expect(Date.now() - clicked).toBeLessThan(10_000);
    expect(result.html).toContain('<h3>Cancelled</h3>');
    expect(await containersOf(taskId)).toEqual([]);
    expect(fake.requests.length).toBe(requestsBefore); // the model was not asked again
    const progress = await client.waitForCard(thread, (h) => h.includes('card progress'), 1000);
    expect(progress.html).not.toContain('data-action="cancel"');
  }, 180_000);

  it('7. a command that never ends is killed at the limit; the run fails with the agent’s words', async () => {
    const agentWords = 'The command kept running past its time limit, so I stopped without making report.md.';
    const fake = await fakeModel(({ calls }) => (calls.length === 0 ? command('sleep 600') : say(agentWords)));
    const handoff = await dev({ env: { ...modelEnv(fake), HANDOFF_COMMAND_TIMEOUT_MS: '3000' } });
    const client = new ConsoleClient(handoff.url);
    const { thread, taskId } = await requestAndApprove(client, 'sleep forever');

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 90_000);
    expect(result.html).toContain('The run failed');
    expect(result.html).toContain('the run ended without delivering any file.');
    expect(result.html).toContain(agentWords);
    expect(toolResultsSeen(fake)).toEqual(
      expect.arrayContaining([expect.stringContaining('killed: the command ran longer than the limit of 3 s')]),
    );
    expect(await containersOf(taskId)).toEqual([]);
  }, 180_000);

  it('8. a memory hog is OOM-killed, the model is told so, and the run fails clearly', async () => {
    const agentWords = 'Python ran out of memory in the sandbox, so there is nothing to deliver.';
    const fake = await fakeModel(({ calls }) =>
      calls.length === 0 ? command('python3 -c "b=bytearray(1<<30)"') : say(agentWords),
    );
    const handoff = await dev({ env: { ...modelEnv(fake), HANDOFF_SANDBOX_MEMORY_MB: '128' } });
    const client = new ConsoleClient(handoff.url);
    const { thread, taskId } = await requestAndApprove(client, 'allocate a lot of memory');

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 90_000);
    expect(result.html).toContain('The run failed');
    expect(result.html).toContain('the run ended without delivering any file.');
    expect(result.html).toContain(agentWords);
    expect(toolResultsSeen(fake)).toEqual(
      expect.arrayContaining([expect.stringContaining('killed: out of memory (the sandbox memory limit was reached)')]),
    );
    expect(await containersOf(taskId)).toEqual([]);
  }, 180_000);

  it('9. with Docker unreachable, planning retries and then the thread says why it failed', async () => {
    const driver = new DockerSandboxDriver({
      image: sandboxImage,
      docker: new Dockerode({ socketPath: '/nonexistent.sock' }),
      sandboxUser,
    });
    const handoff = await dev({ driver });
    const client = new ConsoleClient(handoff.url);
    const started = Date.now();
    const posted = await client.post(salesRequest, [{ name: 'sales.csv', path: salesCsv }]);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    taskIds.push(posted.body.taskId!);

    const failed = await client.waitForCard(thread, (h) => h.includes('status-failed'), 60_000);
    // Three attempts, 2 s then 4 s apart (src/queue/queues.ts).
    expect(Date.now() - started).toBeGreaterThanOrEqual(6000);
    expect(failed.html).toContain('Planning failed: Docker is not reachable');
    expect(failed.html).toContain('/nonexistent.sock');
    const thr = await client.thread(thread);
    expect(thr.some((m) => m.html?.includes('card plan'))).toBe(false);
    expect(thr.filter((m) => !m.author.bot).map((m) => m.text)).toEqual([salesRequest]);
  }, 180_000);

  /**
   * A run's first runner goes away in the middle of a 20-second command, and another runner
   * resumes the run from its checkpoint. `kill`: SIGKILL, as when a machine dies; the new
   * runner starts afterwards. `scale-in`: SIGTERM, as when an autoscaler removes a replica;
   * the other replica is already running, and the stopping one must exit cleanly.
   */
  async function runnerLeavesMidCommand(how: 'kill' | 'scale-in') {
    const restartedNote = 'The runner restarted while this call was in progress';
    const fake = await fakeModel(({ calls }) => {
      const last = calls.at(-1);
      if (!last) return command('sleep 20');
      if (last.input.command === 'sleep 20')
        return command("printf '# Report\\nresumed after a runner restart\\n' > /workspace/out/report.md");
      if (last.name === 'run_command') return tool('deliver_artifact', { path: '/workspace/out/report.md' });
      return say('Delivered report.md.');
    });

    const dataDir = await mkdtemp(join(tmpdir(), 'handoff-test-'));
    lateCleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const redis = await startRedisServer({ dir: join(dataDir, 'redis') });
    lateCleanups.unshift(() => redis.stop());
    const env = {
      REDIS_URL: redis.url,
      HANDOFF_DATA_DIR: dataDir,
      HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      ...modelEnv(fake),
    };
    const config = loadConfig({
      env: { ...env, HANDOFF_PORT: '0', HANDOFF_CONSOLE_SIGNIN: 'tokens' },
      file: '/dev/null',
    });
    const bot = await startHandoff({ config, mode: 'bot', logger: createLogger(config.logLevel, 'handoff-test') });
    cleanups.push(() => bot.close());

    const output: string[] = [];
    const runners: ChildProcess[] = [];
    const startRunner = (runnerId: string, extra: Record<string, string> = {}) => {
      const child = spawn(process.execPath, ['bin/handoff.js', 'runner'], {
        cwd: repoRoot,
        env: { ...process.env, ...env, HANDOFF_CONFIG: '/dev/null', HANDOFF_RUNNER_ID: runnerId, ...extra },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
      child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
      runners.push(child);
      return child;
    };
    cleanups.push(async () => {
      for (const child of runners) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    });

    const first = startRunner('runner-a');
    const people = new Redis(redis.url);
    cleanups.push(async () => people.quit());
    const users = new ConsoleUsers(people);
    const tokens = {
      Ana: (await users.add('Ana')).token,
      Ben: (await users.add('Ben')).token,
    };
    const client = new TokenConsoleClient(bot.url!, tokens);
    // Under `handoff bot` a requester may not approve their own plan: Ben approves.
    const { thread, taskId } = await requestAndApprove(client, 'write a report slowly', 'Ben');
    await client.waitForCard(thread, (h) => h.includes('card progress') && h.includes('$ sleep 20'), 60_000);
    await until(
      'the run container',
      async () => ((await containersOf(taskId)).some((c) => c.State === 'running') ? true : undefined),
      30_000,
    );
    await new Promise((r) => setTimeout(r, 1000));

    const exited = new Promise<number | null>((r) => first.once('exit', (code) => r(code)));
    if (how === 'kill') {
      first.kill('SIGKILL');
      await exited;
      startRunner('runner-b');
    } else {
      // The other replica is up before this one is told to go.
      const second = startRunner('runner-b', { LOG_LEVEL: 'info' });
      await until(
        'the second runner',
        async () => (output.join('').includes('runner started') ? true : undefined),
        60_000,
      );
      expect(second.exitCode).toBeNull();
      first.kill('SIGTERM');
      // It hands the run back and exits on its own, cleanly, without being killed.
      expect(await exited).toBe(0);
    }

    let result: ConsoleMessage;
    try {
      result = await client.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nrunner output:\n${output.join('')}`);
    }
    expect(result.html, result.html).toContain('<h3>Done</h3>');
    expect(toolResultsSeen(fake)).toEqual(expect.arrayContaining([expect.stringContaining(restartedNote)]));
    const [file] = links(result.html!);
    expect(file?.name).toBe('report.md');
    const download = await fetch(new URL(file!.href, bot.url));
    expect(download.status).toBe(200);
    expect(await download.text()).toContain('resumed after a runner restart');
    // The run's workspace on this runner's disk went when the run ended (its files are in the store).
    await expect(stat(join(dataDir, 'workspaces', taskId))).rejects.toMatchObject({ code: 'ENOENT' });
    // The dead runner's container was removed when the run resumed; the resumed one when it ended.
    expect(await containersOf(taskId)).toEqual([]);
    // One run, started on the first runner, resumed on the second, finished once.
    const audit = (await new AuditLog(people).records()).filter((r) => r.taskId === taskId);
    const runEvents = audit
      .filter((r) => r.type.startsWith('run.'))
      .map((r) => `${r.type}@${String(r.data.runner ?? '')}`);
    expect(runEvents.filter((e) => e.startsWith('run.started'))).toEqual(['run.started@runner-a']);
    expect(runEvents.filter((e) => e.startsWith('run.resumed'))).toEqual(['run.resumed@runner-b']);
    expect(audit.filter((r) => /^run\.(succeeded|failed|cancelled)$/.test(r.type)).map((r) => r.type)).toEqual([
      'run.succeeded',
    ]);
  }

  it('10. a runner killed mid-command: a new runner resumes the run from its checkpoint and delivers', async () => {
    await runnerLeavesMidCommand('kill');
  }, 180_000);

  it('11. a runner scaled in mid-command (SIGTERM): it exits cleanly, the other runner resumes the run and delivers', async () => {
    await runnerLeavesMidCommand('scale-in');
  }, 180_000);
});
