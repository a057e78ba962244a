import { readFileSync } from 'node:fs';
import { ErrorCodes, HandoffError, type PlanDraft, zeroUsage } from '../../core/index.ts';
import type { ContentBlock, MessageParam, ModelProvider, ModelRequest, ModelResponse } from '../model/provider.ts';
import { deckCalls, deckClosing, deckPlan, slideCount, wantsDeck } from './deck-sample.ts';
import {
  sheetPerRegionCalls,
  sheetPerRegionClosing,
  sheetPerRegionPlan,
  wantsSheetPerRegion,
} from './fan-out-sample.ts';

const script = (name: string) => readFileSync(new URL(`./scripts/${name}`, import.meta.url), 'utf8');

export const demoUnsupportedMessage =
  'The demo model only handles the bundled sample tasks (see examples/README.md): a sales CSV summarised into a spreadsheet (or one sheet per region, prepared in parallel) or into a one-page sales brief, or notes turned into a brief or into a slide deck. To hand off any other request, set ANTHROPIC_API_KEY (optionally HANDOFF_MODEL and ANTHROPIC_BASE_URL) and restart Handoff.';

export const demoFollowUpMessage =
  'The demo model replays the bundled samples and cannot draft a follow-up; what it delivered stays in the thread. To follow up on a delivery, set ANTHROPIC_API_KEY (optionally HANDOFF_MODEL and ANTHROPIC_BASE_URL) and restart Handoff, or mention @handoff with a new sample request.';

interface Sample {
  id: 'sales' | 'brief' | 'sales-brief' | 'sheet-per-region' | 'deck';
  /** Reads the input while planning (read_file) and plans from what it says. */
  look?: boolean;
  plan: (input: string, looked?: string, firstMessage?: string) => PlanDraft;
  /** The run's tool calls, in order; each may look at the previous result. */
  calls: (input: string, firstMessage?: string) => Array<{ name: string; input: Record<string, unknown> }>;
  closing: (outputs: string[], firstMessage?: string) => string;
}

const samples: Sample[] = [
  {
    // Notes to a deck with the built-in pptx skill: load_skill, then the skill's own script.
    id: 'deck',
    plan: (input, _looked, first) => deckPlan(input, slideCount(requestOf(first ?? ''))),
    calls: (input, first) => deckCalls(input, slideCount(requestOf(first ?? ''))),
    closing: (outputs) => deckClosing(outputs.map(parseFacts).findLast((f) => typeof f?.slides === 'number')),
  },
  {
    // Fans out: one workstream per region, each in its own sandbox, merged into one workbook.
    id: 'sheet-per-region',
    look: true,
    plan: (input, looked) => sheetPerRegionPlan(input, looked ?? ''),
    calls: (input, first) => sheetPerRegionCalls(input, first ?? ''),
    closing: (outputs, first) => sheetPerRegionClosing(first ?? '', outputs.map(parseFacts)),
  },
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
  {
    id: 'sales-brief',
    plan: (input) => ({
      summary: `Write a one-page sales brief from ${input}: the date and a few bullet points with the total, the regions, the top region and its share, and the smallest region, as markdown and a PDF.`,
      steps: [
        { title: 'Read the sales CSV', detail: `Check the columns and rows of ${input}.`, actions: ['read_files'] },
        {
          title: 'Write the brief',
          detail:
            'Compute the total, rows, regions, top region and its share, and the smallest region; write them as 3–6 bullet points under the title and date in sales-brief.md, and the same on one page in sales-brief.pdf.',
          actions: ['run_commands', 'create_files'],
        },
        {
          title: 'Deliver md and pdf',
          detail: 'Post sales-brief.md and sales-brief.pdf in the thread.',
          actions: ['create_files'],
        },
      ],
      deliverables: [
        { name: 'sales-brief.md', type: 'md' },
        { name: 'sales-brief.pdf', type: 'pdf' },
      ],
    }),
    calls: (input) => [
      { name: 'write_file', input: { path: '/tmp/sales_brief.py', content: script('sales_brief.py'), step: 1 } },
      {
        name: 'run_command',
        input: {
          command: `python3 /tmp/sales_brief.py '/workspace/in/${input}' /workspace/out/sales-brief.md /workspace/out/sales-brief.pdf`,
          step: 2,
        },
      },
      { name: 'deliver_artifact', input: { path: '/workspace/out/sales-brief.md', step: 3 } },
      { name: 'deliver_artifact', input: { path: '/workspace/out/sales-brief.pdf', step: 3 } },
    ],
    closing: (outputs) => {
      // The script's JSON line; a call made again after a restart can shift it from outputs[1].
      const facts = outputs.map(parseFacts).findLast((f) => typeof f?.total === 'number');
      const base = 'Here is the sales brief as sales-brief.md and sales-brief.pdf.';
      if (!facts || typeof facts.total !== 'number' || typeof facts.rows !== 'number') return base;
      const regions = typeof facts.regions === 'number' ? ` and ${count(facts.regions, 'region')}` : '';
      let text = `Sales brief: ${money(facts.total)} in total from ${count(facts.rows, 'row')}${regions}`;
      if (typeof facts.top_region === 'string') {
        const share = typeof facts.top_share === 'number' ? ` with ${facts.top_share.toFixed(1)}% of the total` : '';
        text += `; ${plain(facts.top_region)} leads${share}`;
        if (typeof facts.smallest_region === 'string' && facts.regions !== 1) {
          const small = typeof facts.smallest_share === 'number' ? ` with ${facts.smallest_share.toFixed(1)}%` : '';
          text += ` and ${plain(facts.smallest_region)} is the smallest${small}`;
        }
      }
      return `${text}. The full brief is in sales-brief.md and sales-brief.pdf.`;
    },
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
      if (sample.look && assistantTurns === 1) return toolUse('read_file', { path: `/workspace/in/${input}` });
      return toolUse('submit_plan', sample.plan(input, toolResultsOf(request.messages.at(-1))[0]?.text, first));
    }

    const calls = sample.calls(input, first);
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
    return endTurn(sample.closing(outputs.map(lastJsonLine), first));
  }
}

/** The request's text in a first message. */
function requestOf(firstMessage: string): string {
  return /<request>\n([\s\S]*?)\n<\/request>/.exec(firstMessage)?.[1] ?? '';
}

/** Which sample a request is, or a clear refusal that says how to configure a real model. */
export function matchSample(firstMessage: string): { sample: Sample; input: string } {
  // A follow-up would replay the sample unchanged while the card claimed the change was made.
  if (/<previous_plan version="\d+" delivered="true">/.test(firstMessage))
    throw new HandoffError(ErrorCodes.demoUnsupported, demoFollowUpMessage);
  const request = requestOf(firstMessage);
  const inputs = [...firstMessage.matchAll(/^- \/workspace\/in\/(.+?) \(/gm)].map((m) => m[1]!);
  const csv = inputs.find((n) => /\.csv$/i.test(n));
  const notes = inputs.find((n) => /\.(md|txt|markdown)$/i.test(n));
  const sheet = /\b(spreadsheet|xlsx|excel|workbook)\b/i.test(request);
  if (csv && wantsSheetPerRegion(request)) return { sample: sampleById('sheet-per-region'), input: csv };
  // A brief from a CSV ("a sales brief from the attached CSV"); with notes attached too, only
  // when the request names the sales data, so "turn the notes into a brief" stays the notes brief.
  if (csv && /\bbriefs?\b/i.test(request) && !sheet && (!notes || /\b(sales|csv|revenue)\b/i.test(request))) {
    return { sample: sampleById('sales-brief'), input: csv };
  }
  if (csv && (sheet || /\bsummari[sz]e\b/i.test(request))) return { sample: sampleById('sales'), input: csv };
  if (notes && wantsDeck(request, notes)) return { sample: sampleById('deck'), input: notes };
  if (notes && /\b(brief|docx|pdf|word)\b/i.test(request)) return { sample: sampleById('brief'), input: notes };
  throw new HandoffError(ErrorCodes.demoUnsupported, demoUnsupportedMessage);
}

function sampleById(id: Sample['id']): Sample {
  const found = samples.find((s) => s.id === id);
  if (!found) throw new Error(`no demo sample ${id}`);
  return found;
}

/** A figure as the closing text quotes it: 154,049.00. */
function money(value: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** A name from the CSV, quoted in chat: one short line without markup characters. */
function plain(name: string): string {
  const text = name
    .replace(/[<>&*_~`|\\[\]]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 40 ? `${text.slice(0, 39).trimEnd()}…` : text || '(none)';
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
