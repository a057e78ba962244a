/**
 * Scripted turns for the local stand-in of the Messages API that several tests share: a
 * one-step plan that writes done.md, the tool calls of a run, and the turns that finish it.
 */
import type { FakeReply } from '../fakes/anthropic-server.ts';

/** A plan whose one step needs reading, commands and new files, delivering done.md. */
export const doneMdPlan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Write done.md after a long step.',
        steps: [{ title: 'Work', actions: ['read_files', 'run_commands', 'create_files'] }],
        deliverables: [{ name: 'done.md', type: 'md' }],
      },
    },
  ],
};

/** A turn that makes one tool call. */
export const call = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input }],
});

/** The turns that write done.md, deliver it and end the run. */
export const finishDoneMd: FakeReply[] = [
  call('run_command', { command: 'echo "# Done" > /workspace/out/done.md', step: 1 }),
  call('deliver_artifact', { path: '/workspace/out/done.md' }),
  { content: [{ type: 'text', text: 'Wrote done.md.' }] },
];
