import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/index.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;

describeDocker('log lines name the task and run they are about', () => {
  let handoff: TestHandoff;
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const text of chunk.toString('utf8').split('\n')) if (text.trim()) lines.push(JSON.parse(text));
        done();
      },
    });
    handoff = await startDevHandoff({ logger: createLogger('trace', 'handoff-test', { destination }) });
  });
  afterAll(async () => {
    await handoff?.close();
  });

  it('every line written while a plan or run job is worked on carries its task id (and run id)', async () => {
    const client = new ConsoleClient(handoff.url);
    const posted = await client.post('@handoff summarise the attached sales CSV into a spreadsheet with a chart', [
      { name: 'sales.csv', path: salesCsv },
    ]);
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    expect((await client.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);
    await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);

    const taskIds = new Set(lines.map((l) => l.taskId).filter((v): v is string => typeof v === 'string'));
    expect(taskIds.size).toBe(1);
    const [taskId] = [...taskIds];
    // Every line that speaks of the task, in any field, names it in `taskId`.
    const speaking = lines.filter((l) => JSON.stringify(l).includes(taskId!));
    expect(speaking.filter((l) => l.taskId !== taskId)).toEqual([]);
    // The lifecycle lines: none of these call sites passes the task or run id itself.
    const line = (msg: string) => lines.find((l) => l.msg === msg);
    expect(line('plan ready for approval')).toMatchObject({ taskId, planVersion: 1 });
    const runId = line('run started')?.runId;
    expect(runId).toMatch(/^r_/);
    expect(line('sandbox created')).toMatchObject({ taskId });
    expect(line('run finished')).toMatchObject({ taskId, runId, outcome: 'succeeded' });
    // Nothing about the run is logged without its ids.
    expect(lines.filter((l) => l.runId !== undefined && (l.taskId !== taskId || l.runId !== runId))).toEqual([]);
  }, 300_000);
});
