import { describe, expect, it } from 'vitest';
import { fileNameProblem } from '../../../src/core/artifact.ts';
import { HandoffError } from '../../../src/core/errors.ts';
import { newTask, type Task, type TaskState, TaskStateSchema, transition } from '../../../src/core/task.ts';

/**
 * The legal moves, copied from DESIGN §5 rather than read from the source under test; a
 * run parks in `waiting_for_answer` while the agent's question is open, as it does for an approval.
 */
const legal: ReadonlyArray<readonly [TaskState, TaskState]> = [
  ['requested', 'planning'],
  ['requested', 'failed'],
  ['requested', 'cancelled'],
  ['planning', 'awaiting_approval'],
  ['planning', 'failed'],
  ['planning', 'cancelled'],
  ['awaiting_approval', 'queued'],
  ['awaiting_approval', 'denied'],
  ['awaiting_approval', 'expired'],
  ['awaiting_approval', 'planning'],
  ['awaiting_approval', 'cancelled'],
  ['queued', 'running'],
  ['queued', 'failed'],
  ['queued', 'cancelled'],
  ['running', 'waiting_for_approval'],
  ['running', 'waiting_for_answer'],
  ['running', 'succeeded'],
  ['running', 'failed'],
  ['running', 'cancelled'],
  ['waiting_for_approval', 'running'],
  ['waiting_for_approval', 'failed'],
  ['waiting_for_approval', 'cancelled'],
  ['waiting_for_answer', 'running'],
  ['waiting_for_answer', 'failed'],
  ['waiting_for_answer', 'cancelled'],
  // A follow-up in the thread after the delivery plans the task again.
  ['succeeded', 'planning'],
];
const terminal: readonly TaskState[] = ['denied', 'expired', 'succeeded', 'failed', 'cancelled'];
const allStates = TaskStateSchema.options;
const isLegal = (from: TaskState, to: TaskState) => legal.some(([f, t]) => f === from && t === to);
const illegal = allStates.flatMap((from) => allStates.filter((to) => !isLegal(from, to)).map((to) => [from, to]));

const created = new Date('2025-03-01T09:00:00.000Z');
const later = new Date('2025-03-01T09:05:00.000Z');

function taskIn(state: TaskState, extra: Partial<Task> = {}): Task {
  const task = newTask(
    {
      id: 't_abcdef123',
      conversation: { surface: 'web', channel: 'general', thread: 'th_1' },
      requester: { id: 'u_ana', name: 'Ana' },
      request: 'Turn sales.csv into a spreadsheet',
      inputs: [],
      demo: false,
    },
    created,
  );
  return { ...task, state, ...extra };
}

describe('task state machine', () => {
  it('knows twelve states, so 144 pairs split into 26 legal and 118 illegal moves', () => {
    expect(allStates).toHaveLength(12);
    expect(legal).toHaveLength(26);
    expect(illegal).toHaveLength(118);
  });

  it('clears the finished and started times when a follow-up plans a delivered task again', () => {
    const done = taskIn('succeeded', { startedAt: created.toISOString(), finishedAt: created.toISOString() });
    const next = transition(done, 'planning', later);
    expect(next.state).toBe('planning');
    expect(next.finishedAt).toBeUndefined();
    expect(next.startedAt).toBeUndefined();
    expect(done.finishedAt).toBe(created.toISOString());
  });

  it.each(legal)('allows %s → %s and stamps the time', (from, to) => {
    const before = taskIn(from);
    const next = transition(before, to, later);
    expect(next.state).toBe(to);
    expect(next.updatedAt).toBe(later.toISOString());
    expect(next.createdAt).toBe(created.toISOString());
    if (to === 'running' && !before.startedAt) expect(next.startedAt).toBe(later.toISOString());
    if (to !== 'running') expect(next.startedAt).toBeUndefined();
    if (terminal.includes(to)) expect(next.finishedAt).toBe(later.toISOString());
    else expect(next.finishedAt).toBeUndefined();
    // Pure: the task passed in is left as it was.
    expect(before.state).toBe(from);
    expect(before.updatedAt).toBe(created.toISOString());
  });

  it.each(illegal)('refuses %s → %s with handoff_illegal_transition', (from, to) => {
    const task = taskIn(from as TaskState);
    let thrown: unknown;
    try {
      transition(task, to as TaskState, later);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(HandoffError);
    expect((thrown as HandoffError).code).toBe('handoff_illegal_transition');
    expect((thrown as HandoffError).message).toContain(to.replace(/_/g, ' '));
  });

  it('keeps the first startedAt when a run resumes after waiting for approval', () => {
    const firstStart = '2025-03-01T09:01:00.000Z';
    const waiting = taskIn('waiting_for_approval', { startedAt: firstStart });
    const resumed = transition(waiting, 'running', later);
    expect(resumed.startedAt).toBe(firstStart);
    expect(resumed.updatedAt).toBe(later.toISOString());
  });

  it('applies a patch together with the move', () => {
    const next = transition(taskIn('running'), 'failed', later, {
      failure: { code: 'handoff_run_timeout', message: 'took too long' },
    });
    expect(next.state).toBe('failed');
    expect(next.failure).toEqual({ code: 'handoff_run_timeout', message: 'took too long' });
    expect(next.finishedAt).toBe(later.toISOString());
  });
});

describe('fileNameProblem', () => {
  it.each([
    ['../x', 'traversal'],
    ['/etc/passwd', 'absolute path'],
    ['a/b', 'directory'],
    ['..', 'parent directory'],
    ['a\\b', 'backslash path'],
    ['bad\nname.csv', 'newline'],
    ['bad\u0000name.csv', 'NUL'],
    ['bell\u0007.txt', 'control character'],
    ['del\u007f.txt', 'DEL'],
    ['x'.repeat(256), '256 characters'],
    ['', 'empty'],
  ])('refuses %j (%s)', (name) => {
    const problem = fileNameProblem(name);
    expect(problem).toEqual(expect.any(String));
    expect(problem!.length).toBeGreaterThan(0);
  });

  it.each(['sales.csv', 'Q3 report (final).xlsx', 'x'.repeat(255), 'notes.v2.md'])('accepts %j', (name) => {
    expect(fileNameProblem(name)).toBeUndefined();
  });
});
