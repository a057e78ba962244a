import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DemoProvider, demoFollowUpMessage, matchSample } from '../../../src/agent/demo/demo-provider.ts';
import type { MessageParam } from '../../../src/agent/model/provider.ts';
import { revisionMessage } from '../../../src/agent/prompts.ts';
import { planTools, runTools } from '../../../src/agent/tools.ts';
import { ErrorCodes, HandoffError, type Plan, PlanDraftSchema } from '../../../src/core/index.ts';

const first = `Request from Ana:\n<request>\nsummarise the attached sales CSV into a spreadsheet\n</request>\n\nInput files:\n- /workspace/in/sales.csv (text/csv, 100 bytes)\n\nCarry out the approved plan for this request.`;
const result = (id: string, content: string, isError = false) => ({
  type: 'tool_result' as const,
  tool_use_id: id,
  content,
  ...(isError ? { is_error: true } : {}),
});
const use = (id: string, name: string) => ({ type: 'tool_use' as const, id, name, input: {} });

async function next(messages: MessageParam[]) {
  const r = await new DemoProvider().createMessage({ system: [], messages, tools: runTools, maxTokens: 1000 });
  return r.content[0] as { type: string; name?: string; input?: { path?: string; command?: string } };
}

describe('the demo model after a runner stopped', () => {
  it('makes a call again whose effect is unknown', async () => {
    const call = await next([
      { role: 'user', content: first },
      { role: 'assistant', content: [use('a', 'write_file')] },
      { role: 'user', content: [result('a', 'wrote')] },
      { role: 'assistant', content: [use('b', 'run_command')] },
      {
        role: 'user',
        content: [
          result(
            'b',
            'The runner restarted while this call was in progress; it may or may not have taken effect.',
            true,
          ),
        ],
      },
    ]);
    expect(call.name).toBe('run_command');
  });

  it('starts over when its sandbox was replaced and /tmp is gone', async () => {
    const call = await next([
      { role: 'user', content: first },
      { role: 'assistant', content: [use('a', 'write_file')] },
      { role: 'user', content: [result('a', 'wrote')] },
      { role: 'assistant', content: [use('b', 'run_command')] },
      {
        role: 'user',
        content: [
          result(
            'b',
            'The runner restarted while this call was in progress; it may or may not have taken effect.',
            true,
          ),
          {
            type: 'text',
            text: 'Note from Handoff: the run was resumed in a new sandbox (its runner stopped): files in /tmp and any running processes are gone.',
          },
        ],
      },
    ]);
    expect(call.name).toBe('write_file');
    expect(call.input?.path).toBe('/tmp/sales_to_xlsx.py');
  });
});

/** The first message of a task: the request and its input files, as prompts.ts writes it. */
const taskText = (request: string, inputs: string[], purpose = 'Carry out the approved plan for this request.') =>
  `Request from Ana:\n<request>\n${request}\n</request>\n\nInput files:\n${inputs.map((n) => `- /workspace/in/${n} (text/plain, 100 bytes)`).join('\n')}\n\n${purpose}`;

const chosen = (request: string, inputs: string[]) => {
  const { sample, input } = matchSample(taskText(request, inputs));
  return `${sample.id} ${input}`;
};

describe('choosing a demo sample', () => {
  it('takes a brief from a CSV for the sales brief, one-off or scheduled', () => {
    expect(chosen('a sales brief from the attached CSV', ['sales.csv'])).toBe('sales-brief sales.csv');
    expect(chosen('@handoff every weekday at 9:00: a sales brief from the attached CSV', ['sales.csv'])).toBe(
      'sales-brief sales.csv',
    );
    expect(chosen('Summarise Q3.csv into a short Brief as pdf', ['Q3.csv'])).toBe('sales-brief Q3.csv');
    expect(chosen('a sales brief from the attached CSV', ['meeting-notes.md', 'sales.csv'])).toBe(
      'sales-brief sales.csv',
    );
  });

  it('still takes the spreadsheet and the notes brief for their requests', () => {
    expect(
      chosen('summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart', ['sales.csv']),
    ).toBe('sales sales.csv');
    expect(chosen('a brief of the sales as an xlsx workbook', ['sales.csv'])).toBe('sales sales.csv');
    expect(chosen('turn the attached notes into a one-page brief as docx and pdf', ['meeting-notes.md'])).toBe(
      'brief meeting-notes.md',
    );
    expect(chosen('turn the attached notes into a one-page brief', ['meeting-notes.md', 'sales.csv'])).toBe(
      'brief meeting-notes.md',
    );
    expect(chosen('make a brief from these notes', ['notes.txt'])).toBe('brief notes.txt');
  });

  it('refuses what no sample does', () => {
    for (const [request, inputs] of [
      ['a sales brief from the attached file', ['report.xlsx']],
      ['translate the attached CSV into French', ['sales.csv']],
    ] as const) {
      let error: unknown;
      try {
        matchSample(taskText(request, [...inputs]));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(HandoffError);
      expect((error as HandoffError).code).toBe(ErrorCodes.demoUnsupported);
    }
  });
});

describe('a follow-up under the demo model', () => {
  it('is refused with words that say so, rather than replaying the sample unchanged', async () => {
    const plan = {
      version: 1,
      summary: 'Summarise sales.csv into a spreadsheet.',
      steps: [{ title: 'Build the workbook', detail: '', actions: ['run_commands' as const] }],
      deliverables: [{ name: 'sales-summary.xlsx', type: 'xlsx' as const }],
    } as unknown as Plan;
    const message = revisionMessage({
      plan,
      changes: ['make the chart a line chart'],
      followUp: { deliverables: ['sales-summary.xlsx'] },
    });
    const first = `${taskText('summarise the attached sales CSV into a spreadsheet', ['sales.csv', 'sales-summary.xlsx'], '')}${message}`;
    let error: unknown;
    try {
      matchSample(first);
    } catch (e) {
      error = e;
    }
    expect((error as HandoffError).code).toBe(ErrorCodes.demoUnsupported);
    expect((error as HandoffError).message).toBe(demoFollowUpMessage);
    // The same request without the follow-up is still the sample.
    expect(matchSample(taskText('summarise the attached sales CSV into a spreadsheet', ['sales.csv'])).sample.id).toBe(
      'sales',
    );
  });
});

describe('the sales brief sample', () => {
  const request = '@handoff every weekday at 9:00: a sales brief from the attached CSV';
  const provider = new DemoProvider();

  it('lists the inputs, then plans a markdown and a PDF brief', async () => {
    const planning = taskText(request, ['sales.csv'], 'Draft the plan for this request.');
    const list = await provider.createMessage({
      system: [],
      messages: [{ role: 'user', content: planning }],
      tools: planTools,
      maxTokens: 1000,
    });
    expect(list.content[0]).toMatchObject({ type: 'tool_use', name: 'list_files' });
    const submit = await provider.createMessage({
      system: [],
      messages: [
        { role: 'user', content: planning },
        { role: 'assistant', content: [use('l', 'list_files')] },
        { role: 'user', content: [result('l', 'f 100 /workspace/in/sales.csv')] },
      ],
      tools: planTools,
      maxTokens: 1000,
    });
    const call = submit.content[0] as { type: string; name: string; input: unknown };
    expect(call.name).toBe('submit_plan');
    const plan = PlanDraftSchema.parse(call.input);
    expect(plan.summary).toContain('sales.csv');
    expect(plan.steps.length).toBeGreaterThanOrEqual(2);
    expect(plan.steps.length).toBeLessThanOrEqual(3);
    expect(plan.deliverables).toEqual([
      { name: 'sales-brief.md', type: 'md' },
      { name: 'sales-brief.pdf', type: 'pdf' },
    ]);
  });

  it('writes the script, runs it on the CSV, delivers both files and quotes the figures', async () => {
    const first = taskText(request, ['sales.csv']);
    const facts = {
      total: 154049,
      rows: 48,
      regions: 4,
      top_region: 'East',
      top_value: 45902,
      top_share: 29.8,
      smallest_region: 'South',
      smallest_share: 21,
      date: '2026-05-04',
    };
    const outputs = [
      'wrote /tmp/sales_brief.py',
      `exit code 0\n<stdout>\n${JSON.stringify(facts)}\n\n</stdout>\n<stderr>\n\n</stderr>`,
      'delivered sales-brief.md',
      'delivered sales-brief.pdf',
    ];
    const messages: MessageParam[] = [{ role: 'user', content: first }];
    const calls: Array<{ name?: string; input?: Record<string, unknown> }> = [];
    for (const [i, output] of outputs.entries()) {
      const call = (await next(messages)) as { name?: string; input?: Record<string, unknown> };
      calls.push(call);
      messages.push({ role: 'assistant', content: [use(`c${i}`, call.name ?? '')] });
      messages.push({ role: 'user', content: [result(`c${i}`, output)] });
    }
    expect(calls.map((c) => c.name)).toEqual(['write_file', 'run_command', 'deliver_artifact', 'deliver_artifact']);
    expect(calls[0]?.input?.path).toBe('/tmp/sales_brief.py');
    expect(calls[0]?.input?.content).toBe(
      readFileSync(new URL('../../../src/agent/demo/scripts/sales_brief.py', import.meta.url), 'utf8'),
    );
    expect(calls[1]?.input?.command).toBe(
      "python3 /tmp/sales_brief.py '/workspace/in/sales.csv' /workspace/out/sales-brief.md /workspace/out/sales-brief.pdf",
    );
    expect(calls.slice(2).map((c) => c.input?.path)).toEqual([
      '/workspace/out/sales-brief.md',
      '/workspace/out/sales-brief.pdf',
    ]);

    const closing = (await next(messages)) as { type: string; text?: string };
    expect(closing.type).toBe('text');
    expect(closing.text).toBe(
      'Sales brief: 154,049.00 in total from 48 rows and 4 regions; East leads with 29.8% of the total and South is the smallest with 21.0%. The full brief is in sales-brief.md and sales-brief.pdf.',
    );
  });

  it('finds the figures after a run command was made again', async () => {
    const stdout = `exit code 0\n<stdout>\n${JSON.stringify({ total: 10.5, rows: 2, regions: 1, top_region: 'North', top_share: 100, smallest_region: 'North' })}\n</stdout>\n<stderr>\n</stderr>`;
    const unknown = 'The runner restarted while this call was in progress; it may or may not have taken effect.';
    const messages: MessageParam[] = [{ role: 'user', content: taskText(request, ['sales.csv']) }];
    for (const [i, [name, text, isError]] of (
      [
        ['write_file', 'wrote', false],
        ['run_command', unknown, true],
        ['run_command', stdout, false],
        ['deliver_artifact', 'ok', false],
        ['deliver_artifact', 'ok', false],
      ] as const
    ).entries()) {
      messages.push({ role: 'assistant', content: [use(`c${i}`, name)] });
      messages.push({ role: 'user', content: [result(`c${i}`, text, isError)] });
    }
    const closing = (await next(messages)) as { text?: string };
    expect(closing.text).toBe(
      'Sales brief: 10.50 in total from 2 rows and 1 region; North leads with 100.0% of the total. The full brief is in sales-brief.md and sales-brief.pdf.',
    );
  });

  it('still closes without the figures when the script printed none', async () => {
    const messages: MessageParam[] = [{ role: 'user', content: taskText(request, ['sales.csv']) }];
    for (const [i, name] of ['write_file', 'run_command', 'deliver_artifact', 'deliver_artifact'].entries()) {
      messages.push({ role: 'assistant', content: [use(`c${i}`, name)] });
      messages.push({ role: 'user', content: [result(`c${i}`, 'ok')] });
    }
    const closing = (await next(messages)) as { text?: string };
    expect(closing.text).toBe('Here is the sales brief as sales-brief.md and sales-brief.pdf.');
  });
});
