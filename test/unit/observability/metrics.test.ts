import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/observability/index.ts';
import { parseExposition, total } from '../../helpers/prometheus.ts';

const samplesOf = async (m: Metrics) => parseExposition(await m.registry.metrics());

describe('Metrics: runs counted from task state changes', () => {
  it('starts a run at queued → running and ends it however it ends, once', async () => {
    const m = new Metrics();
    m.taskChanged('slack', 'queued', 'running');
    m.taskChanged('slack', 'running', 'waiting_for_approval');
    m.taskChanged('slack', 'waiting_for_approval', 'running');
    m.taskChanged('slack', 'running', 'succeeded');
    m.taskChanged('web', 'queued', 'running');
    // A Cancel click on a run parked for a person ends it in the bot.
    m.taskChanged('web', 'waiting_for_approval', 'cancelled');
    m.taskChanged('teams', 'queued', 'running');
    m.taskChanged('teams', 'waiting_for_answer', 'failed');
    const s = await samplesOf(m);
    expect(total(s, 'handoff_runs_started_total')).toBe(3);
    expect(total(s, 'handoff_runs_finished_total', { surface: 'slack', outcome: 'succeeded' })).toBe(1);
    expect(total(s, 'handoff_runs_finished_total', { surface: 'web', outcome: 'cancelled' })).toBe(1);
    expect(total(s, 'handoff_runs_finished_total', { surface: 'teams', outcome: 'failed' })).toBe(1);
    expect(total(s, 'handoff_task_transitions_total')).toBe(8);
  });

  it('counts no run for tasks that never ran, nor for a write that changed no state', async () => {
    const m = new Metrics();
    m.taskChanged('web', 'awaiting_approval', 'denied');
    m.taskChanged('web', 'queued', 'cancelled');
    m.taskChanged('web', 'planning', 'failed');
    m.taskChanged('web', 'running', 'running');
    const s = await samplesOf(m);
    expect(total(s, 'handoff_runs_started_total')).toBe(0);
    expect(total(s, 'handoff_runs_finished_total')).toBe(0);
    expect(total(s, 'handoff_task_transitions_total')).toBe(3);
  });

  it('adds tokens by type and cost by channel, skipping zeros', async () => {
    const m = new Metrics();
    const where = { surface: 'slack', channel: 'C1' };
    m.modelUsage(where, { inputTokens: 5, outputTokens: 0, cacheReadTokens: 2, cacheWriteTokens: 0 }, 0.25);
    m.modelUsage(where, { inputTokens: 5, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 3 }, 0);
    const s = await samplesOf(m);
    expect(total(s, 'handoff_model_tokens_total', { type: 'input', channel: 'C1' })).toBe(10);
    expect(total(s, 'handoff_model_tokens_total', { type: 'output' })).toBe(1);
    expect(total(s, 'handoff_model_tokens_total', { type: 'cache_read' })).toBe(2);
    expect(total(s, 'handoff_model_tokens_total', { type: 'cache_write' })).toBe(3);
    expect(total(s, 'handoff_model_cost_usd_total', where)).toBe(0.25);
  });

  it('leaves the queue series out of a scrape whose read fails, and serves the rest', async () => {
    const m = new Metrics();
    m.tasksCreated.inc({ surface: 'web' });
    m.observeQueues(async () => {
      throw new Error('Redis is away');
    });
    const s = await samplesOf(m);
    expect(total(s, 'handoff_tasks_created_total')).toBe(1);
    expect(s.filter((x) => x.name.startsWith('handoff_queue_'))).toEqual([]);
  });
});
