import type { Plan, Task } from '../../src/core/index.ts';

/** A task as the store would hold it; each test overrides what it is about. */
export function testTask(overrides: Partial<Task> = {}): Task {
  return {
    id: 't_abcdef123',
    createdAt: '2025-03-01T09:00:00.000Z',
    updatedAt: '2025-03-01T09:01:00.000Z',
    conversation: { surface: 'web', channel: 'general', thread: 'th_1' },
    requester: { id: 'u_ana', name: 'Ana' },
    request: 'Turn sales.csv into a spreadsheet',
    inputs: [],
    state: 'awaiting_approval',
    planVersion: 2,
    artifacts: [],
    votes: [],
    changeRequests: [],
    usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 },
    costUsd: 0,
    demo: false,
    ...overrides,
  };
}

/** A two-step spreadsheet plan with a plain envelope; each test overrides what it is about. */
export function testPlan(overrides: Partial<Plan> = {}, envelope: Partial<Plan['envelope']> = {}): Plan {
  return {
    taskId: 't_abcdef123',
    version: 2,
    summary: 'Turn sales.csv into a formatted spreadsheet with totals per region.',
    steps: [
      { title: 'Read the CSV', detail: 'Check columns and row count.', actions: ['read_files'] },
      { title: 'Build the workbook', detail: 'One sheet per region.', actions: ['run_commands', 'create_files'] },
    ],
    deliverables: [{ name: 'sales.xlsx', type: 'xlsx' }],
    estimatedTokens: 60_000,
    estimatedCostUsd: 0.3,
    model: 'claude-sonnet-5-5',
    demo: false,
    createdAt: '2025-03-01T09:01:00.000Z',
    ...overrides,
    envelope: {
      tools: ['read_file', 'list_files', 'run_command', 'write_file', 'deliver_artifact', 'ask_humans'],
      egressDomains: [],
      mayOverwrite: [],
      mayDelete: [],
      deliverableTypes: ['xlsx'],
      budget: { maxTokens: 400_000, maxCostUsd: 5, maxWallTimeMs: 900_000 },
      ...overrides.envelope,
      ...envelope,
    },
  };
}
