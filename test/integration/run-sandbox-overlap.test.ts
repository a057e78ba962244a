// A new run's first model request goes out while its sandbox is being made: the model's
// latency hides the container's start. The first tool call waits for the sandbox, and a
// sandbox that cannot be made still stops the run with its own error.
import { afterEach, expect, it } from 'vitest';
import { ErrorCodes, HandoffError } from '../../src/core/index.ts';
import { DockerSandboxDriver, type Sandbox, type SandboxSpec } from '../../src/runner/sandbox/index.ts';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker, sandboxImage, sandboxUser } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const plan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Write a note.',
        steps: [{ title: 'Write it', actions: ['run_commands', 'create_files'] }],
        deliverables: [{ name: 'note.md', type: 'md' }],
      },
    },
  ],
};
const writeNote: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'run_command',
      input: { command: "printf '# Note\\n' > /workspace/out/note.md", step: 1 },
    },
  ],
};
const deliverNote: FakeReply = {
  content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/note.md' } }],
};

/** A promise that `open()` resolves, or 30 s do, so a test that goes wrong still ends. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
    setTimeout(resolve, 30_000).unref();
  });
  return { opened, open };
}

/** Holds a run's sandbox creation until `release()` (or 30 s), then makes it or fails it. */
class GatedDriver extends DockerSandboxDriver {
  readonly events: string[] = [];
  readonly #released = gate();
  failWith: HandoffError | undefined;

  release(why: string): void {
    this.events.push(`released by ${why}`);
    this.#released.open();
  }

  override async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    if (!spec.label.startsWith('run-')) return super.create(spec, signal);
    this.events.push('create started');
    await this.#released.opened;
    if (this.failWith) throw this.failWith;
    const box = await super.create(spec, signal);
    this.events.push('create done');
    return box;
  }
}

/** Holds the removal of a task's leftovers until the run's own sandbox is being made (or 30 s). */
class SlowClearDriver extends DockerSandboxDriver {
  readonly events: string[] = [];
  readonly #creating = gate();

  override async removeTaskSandboxes(taskId: string, keepId?: string, keepLabel?: string): Promise<number> {
    // Only a run spares a label; the planner's own clearing goes at once.
    if (!keepLabel?.startsWith('run-')) return super.removeTaskSandboxes(taskId, keepId, keepLabel);
    this.events.push(`clear started, sparing ${keepLabel}`);
    await this.#creating.opened;
    const n = await super.removeTaskSandboxes(taskId, keepId, keepLabel);
    this.events.push('clear done');
    return n;
  }

  override async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    if (spec.label.startsWith('run-')) {
      this.events.push(`create started ${spec.label}`);
      this.#creating.open();
    }
    return super.create(spec, signal);
  }
}

describeDocker('a run starts its model request while its sandbox is made', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function start(driver: DockerSandboxDriver, model: FakeAnthropicServer): Promise<TestHandoff> {
    const handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url },
      driver,
    });
    cleanups.push(() => handoff.close());
    return handoff;
  }

  async function approve(client: ConsoleClient): Promise<string> {
    const posted = await client.post('@handoff write a note');
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const answer = await client.action({ action: 'approve', ...planButtons(card.html!) });
    expect(answer.status).toBe(200);
    return thread;
  }

  it('sends the first request before the sandbox exists, and runs the first command in it', async () => {
    const driver = new GatedDriver({ image: sandboxImage, sandboxUser });
    const model = await startFakeAnthropic();
    cleanups.push(() => model.close());
    model.enqueue(
      plan,
      () => {
        // The run's first request: the sandbox is still held back.
        driver.release('the first model request');
        return writeNote;
      },
      deliverNote,
      { content: [{ type: 'text', text: 'Wrote note.md.' }] },
    );
    const handoff = await start(driver, model);
    const client = new ConsoleClient(handoff.url);
    const thread = await approve(client);

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    expect(result.html).toContain('Done');
    expect(links(result.html!).map((l) => l.name)).toEqual(['note.md']);
    // The request came while the sandbox was not there yet (when the creation began depends on the inputs' layout).
    expect(driver.events).toContain('create started');
    expect(driver.events.filter((e) => e !== 'create started')).toEqual([
      'released by the first model request',
      'create done',
    ]);
  }, 180_000);

  it('stops the run with the sandbox failure, cutting off the model request in flight', async () => {
    const driver = new GatedDriver({ image: sandboxImage, sandboxUser });
    driver.failWith = new HandoffError(ErrorCodes.sandboxFailed, 'the sandbox image has no shell (test)', {
      retryable: false,
    });
    const model = await startFakeAnthropic();
    cleanups.push(() => model.close());
    model.enqueue(plan, () => {
      driver.release('the first model request');
      // Long enough that only the sandbox failure can end the request first.
      return { ...writeNote, delayMs: 60_000 };
    });
    const handoff = await start(driver, model);
    const client = new ConsoleClient(handoff.url);
    const thread = await approve(client);

    const failed = await client.waitForCard(thread, (h) => h.includes('card result'), 60_000);
    expect(failed.html).toContain('The run failed');
    expect(failed.html).toContain('the sandbox image has no shell (test)');
    const runRequests = model.requests.slice(1);
    expect(runRequests).toHaveLength(1);
    expect(runRequests[0]!.aborted).toBe(true);
    expect(driver.events.sort()).toEqual(['create started', 'released by the first model request']);
  }, 180_000);

  it('makes the run’s sandbox while what the task left is removed, sparing the new one by its label', async () => {
    const driver = new SlowClearDriver({ image: sandboxImage, sandboxUser });
    const model = await startFakeAnthropic();
    cleanups.push(() => model.close());
    model.enqueue(plan, writeNote, deliverNote, { content: [{ type: 'text', text: 'Wrote note.md.' }] });
    const handoff = await start(driver, model);
    const client = new ConsoleClient(handoff.url);
    const thread = await approve(client);

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    expect(result.html).toContain('Done');
    const runClear = driver.events.findIndex((e) => e.startsWith('clear started, sparing run-'));
    const create = driver.events.findIndex((e) => e.startsWith('create started run-'));
    expect(runClear).toBeGreaterThanOrEqual(0);
    expect(create).toBeGreaterThan(runClear);
    expect(driver.events.indexOf('clear done', runClear)).toBeGreaterThan(create);
    expect(driver.events[runClear]!.slice('clear started, sparing '.length)).toBe(
      driver.events[create]!.slice('create started '.length),
    );
  }, 180_000);
});
