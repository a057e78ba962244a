import { readFileSync } from 'node:fs';
import { ErrorCodes, HandoffError, type PlanDraft, zeroUsage } from '../../core/index.ts';
import type { ContentBlock, MessageParam, ModelProvider, ModelRequest, ModelResponse } from '../model/provider.ts';

const script = (name: string) => readFileSync(new URL(`./scripts/${name}`, import.meta.url), 'utf8');

export const demoUnsupportedMessage =
  'The demo model only handles the bundled sample tasks (see examples/README.md): a sales CSV summarised into a spreadsheet, or notes turned into a brief. To hand off any other request, set ANTHROPIC_API_KEY (optionally HANDOFF_MODEL and ANTHROPIC_BASE_URL) and restart Handoff.';

interface Sample {
  id: 'sales' | 'brief';
  plan: (input: string) => PlanDraft;
  /** The run's tool calls, in order; each may look at the previous result. */
  calls: (input: string) => Array<{ name: string; input: Record<string, unknown> }>;
  closing: (outputs: string[]) => string;
}

const samples: Sample[] = [
  {
    id: 'sales',
    plan: (input) => ({
      summary: `Summarise ${input} into a spreadsheet: the data, a totals sheet per region with live formulas, and a bar chart of revenue by region.`,
      steps: [
        { title: 'Read the sales CSV', detail: `Check the columns and rows of ${input}.`, actions: ['read_files'] },
        {
          title: 'Build the workbook',
          detail: 'Data sheet, Totals sheet with SUMIF formulas, and a bar chart.',
          actions: ['run_commands', 'create_files'],
        },
        {
          title: 'Deliver the spreadsheet',
          detail: 'Post sales-summary.xlsx in the thread.',
          actions: ['create_files'],
        },
      ],
      deliverables: [{ name: 'sales-summary.xlsx', type: 'xlsx' }],
    }),
    calls: (input) => [
      { name: 'write_file', input: { path: '/tmp/sales_to_xlsx.py', content: script('sales_to_xlsx.py'), step: 1 } },
      {
        name: 'run_command',
        input: {
          command: `python3 /tmp/sales_to_xlsx.py '/workspace/in/${input}' /workspace/out/sales-summary.xlsx`,
          step: 2,
        },
      },
      { name: 'deliver_artifact', input: { path: '/workspace/out/sales-summary.xlsx', step: 3 } },
    ],
    closing: (outputs) => {
      const facts = parseFacts(outputs[1]);
      const numbers =
        facts && typeof facts.rows === 'number' && typeof facts.regions === 'number' && typeof facts.total === 'number'
          ? ` It covers ${facts.rows} rows across ${facts.regions} regions, ${facts.total.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })} in total.`
          : '';
      return `Here is sales-summary.xlsx: a Data sheet with every row, a Totals sheet with a SUMIF formula per region and a grand total, and a bar chart of revenue by region.${numbers}`;
    },
  },
  {
    id: 'brief',
    plan: (input) => ({
      summary: `Turn ${input} into a one-page brief (summary, decisions, risks, action items) as a Word document and a PDF.`,
      steps: [
        {
          title: 'Read the notes',
          detail: `Find the decisions, risks and action items in ${input}.`,
          actions: ['read_files'],
        },
        {
          title: 'Write the brief',
          detail: 'One page: summary, decisions, risks, action items table.',
          actions: ['run_commands', 'create_files'],
        },
        {
          title: 'Deliver docx and pdf',
          detail: 'Post brief.docx and brief.pdf in the thread.',
          actions: ['create_files'],
        },
      ],
      deliverables: [
        { name: 'brief.docx', type: 'docx' },
        { name: 'brief.pdf', type: 'pdf' },
      ],
    }),
    calls: (input) => [
      { name: 'write_file', input: { path: '/tmp/notes_to_brief.py', content: script('notes_to_brief.py'), step: 1 } },
      {
        name: 'run_command',
        input: {
          command: `python3 /tmp/notes_to_brief.py '/workspace/in/${input}' /workspace/out/brief.docx /workspace/out/brief.pdf`,
          step: 2,
        },
      },
      { name: 'deliver_artifact', input: { path: '/workspace/out/brief.docx', step: 3 } },
      { name: 'deliver_artifact', input: { path: '/workspace/out/brief.pdf', step: 3 } },
    ],
    closing: () =>
      'Here is the one-page brief as brief.docx and brief.pdf: summary, decisions, risks and the action items with owners.',
  },
];

/**
 * The demo model: replays scripted decisions for the bundled sample tasks so a new user
 * can try the whole flow without an API key. It decides from the transcript alone, so a
 * run resumed after a crash continues where it was. Every card says "demo model".
 */
export class DemoProvider implements ModelProvider {
  readonly name = 'demo';
  readonly model = 'demo';
  readonly demo = true;

  async createMessage(request: ModelRequest): Promise<ModelResponse> {
    const first = textOf(request.messages[0]);
    const { sample, input } = matchSample(first);
    const assistantTurns = request.messages.filter((m) => m.role === 'assistant').length;
    const planning = request.tools.some((t) => t.name === 'submit_plan');

    if (planning) {
      if (assistantTurns === 0) return toolUse('list_files', { path: '/workspace/in' });
      return toolUse('submit_plan', sample.plan(input));
    }

    const calls = sample.calls(input);
    const results = toolResultsOf(request.messages.at(-1));
    const unknown = results.find((r) => r.isError && /may or may not have taken effect/.test(r.text));
    const failed = results.find((r) => r.isError && r !== unknown);
    if (failed) {
      return endTurn(`I could not finish: ${failed.text.slice(0, 1500)}`);
    }
    // Every scripted call is safe to repeat: one cut short by a runner that stopped is made
    // again, and after the sandbox was replaced (its /tmp lost) the script starts over.
    const replaced = request.messages.findLastIndex((m) => /Note from Handoff: .*\/tmp/.test(textOf(m)));
    const done = request.messages
      .slice(replaced + 1)
      .flatMap((m) => toolResultsOf(m))
      .filter((r) => !(r.isError && /may or may not have taken effect/.test(r.text))).length;
    const next = calls[done];
    if (next) return toolUse(next.name, next.input);
    const outputs = request.messages.flatMap((m) => toolResultsOf(m).map((r) => r.text));
    return endTurn(sample.closing(outputs.map(lastJsonLine)));
  }
}

/** Which sample a request is, or a clear refusal that says how to configure a real model. */
export function matchSample(firstMessage: string): { sample: Sample; input: string } {
  const request = /<request>\n([\s\S]*?)\n<\/request>/.exec(firstMessage)?.[1] ?? '';
  const inputs = [...firstMessage.matchAll(/^- \/workspace\/in\/(.+?) \(/gm)].map((m) => m[1]!);
  const csv = inputs.find((n) => /\.csv$/i.test(n));
  const notes = inputs.find((n) => /\.(md|txt|markdown)$/i.test(n));
  if (csv && /\b(spreadsheet|xlsx|excel|workbook|summari[sz]e)\b/i.test(request)) {
    return { sample: samples[0]!, input: csv };
  }
  if (notes && /\b(brief|docx|pdf|word)\b/i.test(request)) return { sample: samples[1]!, input: notes };
  throw new HandoffError(ErrorCodes.demoUnsupported, demoUnsupportedMessage);
}

function textOf(message: MessageParam | undefined): string {
  if (!message) return '';
  if (typeof message.content === 'string') return message.content;
  return message.content.map((b) => (b.type === 'text' ? b.text : '')).join('\n');
}

function toolResultsOf(message: MessageParam | undefined): Array<{ text: string; isError: boolean }> {
  if (message?.role !== 'user' || typeof message.content === 'string') return [];
  return message.content
    .filter((b) => b.type === 'tool_result')
    .map((b) => {
      const r = b as { content?: unknown; is_error?: boolean };
      return {
        text: typeof r.content === 'string' ? r.content : JSON.stringify(r.content ?? ''),
        isError: r.is_error === true,
      };
    });
}

function parseFacts(json: string | undefined): Record<string, unknown> | undefined {
  try {
    return json ? (JSON.parse(json) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function lastJsonLine(text: string): string {
  const m = /\{[^\n]*\}/.exec(/<stdout>\n([\s\S]*?)\n<\/stdout>/.exec(text)?.[1] ?? '');
  return m ? m[0] : '';
}

let counter = 0;
function toolUse(name: string, input: unknown): ModelResponse {
  counter += 1;
  const block = {
    type: 'tool_use',
    id: `toolu_demo_${Date.now().toString(36)}_${counter}`,
    name,
    input,
  } as ContentBlock;
  return { content: [block], stopReason: 'tool_use', usage: zeroUsage, model: 'demo' };
}

function endTurn(text: string): ModelResponse {
  const block = { type: 'text', text, citations: null } as ContentBlock;
  return { content: [block], stopReason: 'end_turn', usage: zeroUsage, model: 'demo' };
}
