// A scripted model for the run-side benches: the plan needs commands and a new file, and the
// run issues `commands` run_commands that each print the container's clock (`date +%s%N`),
// then writes stamp.md, delivers it and ends. Every stamp is read back from the tool result the
// runner sends to the model, so each one was taken inside the sandbox, when the command ran.
import type { FakeAnthropicServer, MessagesRequestBody } from '../../test/fakes/anthropic-server.ts';

/** Prints the container's wall clock in nanoseconds: the containers share the host's clock. */
export const STAMP_COMMAND = 'date +%s%N';

export interface StampRun {
  /** In-container stamps of the run's commands, in ms since the epoch (sub-ms precision). */
  stamps: number[];
}

/**
 * Answers every request of the fake Messages API. `next(commands)` arms the script for the
 * next task and returns the object its stamps are collected in; tasks run one after another.
 * `firstReplyDelayMs` holds the run's first reply back that long, as a real model's first
 * reply takes seconds.
 */
export function stampModel(
  model: FakeAnthropicServer,
  options: { firstReplyDelayMs?: number } = {},
): { next(commands: number): StampRun } {
  let current: StampRun = { stamps: [] };
  let commands = 1;
  model.setHandler((body) => {
    if (list(body.tools).some((t) => (t as { name?: string }).name === 'submit_plan')) {
      return {
        content: [
          {
            type: 'tool_use',
            name: 'submit_plan',
            input: {
              summary: 'Stamp the clock, then write stamp.md.',
              steps: [{ title: 'Stamp', actions: ['run_commands', 'create_files'] }],
              deliverables: [{ name: 'stamp.md', type: 'md' }],
            },
          },
        ],
      };
    }
    const calls = toolUses(body);
    const last = calls.at(-1);
    if (last === 'run_command') {
      const stamp = lastStamp(body);
      if (stamp !== undefined) current.stamps.push(stamp);
    }
    const issued = calls.filter((c) => c === 'run_command').length;
    if (calls.length === 0 && options.firstReplyDelayMs)
      return { ...call('run_command', { command: STAMP_COMMAND, step: 1 }), delayMs: options.firstReplyDelayMs };
    if (issued < commands) return call('run_command', { command: STAMP_COMMAND, step: 1 });
    if (issued === commands)
      return call('run_command', { command: 'echo "# Stamped" > /workspace/out/stamp.md', step: 1 });
    if (last !== 'deliver_artifact') return call('deliver_artifact', { path: '/workspace/out/stamp.md' });
    return { content: [{ type: 'text', text: 'Stamped.' }] };
  });
  return {
    next(n: number) {
      commands = n;
      current = { stamps: [] };
      return current;
    },
  };
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function call(name: string, input: Record<string, unknown>) {
  return { content: [{ type: 'tool_use' as const, name, input }] };
}

/** Names of the tools the run has called so far, in order. */
function toolUses(body: MessagesRequestBody): string[] {
  const names: string[] = [];
  for (const m of list(body.messages) as Array<{ role?: string; content?: unknown }>) {
    if (m.role !== 'assistant' || !Array.isArray(m.content)) continue;
    for (const b of m.content as Array<{ type?: string; name?: string }>) {
      if (b.type === 'tool_use' && b.name) names.push(b.name);
    }
  }
  return names;
}

/** The `date +%s%N` output in the last tool result, in ms. */
function lastStamp(body: MessagesRequestBody): number | undefined {
  const last = (list(body.messages) as Array<{ content?: unknown }>).at(-1);
  if (!last || !Array.isArray(last.content)) return undefined;
  for (const b of last.content as Array<{ type?: string; content?: unknown }>) {
    if (b.type !== 'tool_result') continue;
    const text =
      typeof b.content === 'string'
        ? b.content
        : Array.isArray(b.content)
          ? (b.content as Array<{ text?: string }>).map((c) => c.text ?? '').join('')
          : '';
    const m = /<stdout>\n(\d{19})\n/.exec(text);
    if (m) return nsToMs(m[1]!);
  }
  return undefined;
}

/** `date +%s%N` output to ms since the epoch, keeping sub-ms digits. */
export function nsToMs(ns: string): number {
  return Number(BigInt(ns.trim()) / 1000n) / 1000;
}

/** The host's wall clock in ms with sub-ms precision (comparable with an in-container stamp). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
