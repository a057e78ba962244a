import { describe, expect, it } from 'vitest';
import { DemoProvider } from '../../../src/agent/demo/demo-provider.ts';
import type { MessageParam } from '../../../src/agent/model/provider.ts';
import { runTools } from '../../../src/agent/tools.ts';

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
