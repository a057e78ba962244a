import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** Prometheus metrics for one process; served at /metrics by the bot. */
export class Metrics {
  readonly registry = new Registry();
  readonly tasksCreated = new Counter({
    name: 'handoff_tasks_created_total',
    help: 'Tasks created',
    labelNames: ['surface'] as const,
    registers: [this.registry],
  });
  readonly runsFinished = new Counter({
    name: 'handoff_runs_finished_total',
    help: 'Runs finished by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly toolCalls = new Counter({
    name: 'handoff_tool_calls_total',
    help: 'Agent tool calls',
    labelNames: ['tool', 'decision'] as const,
    registers: [this.registry],
  });
  readonly runDuration = new Histogram({
    name: 'handoff_run_duration_seconds',
    help: 'Run wall time',
    buckets: [5, 15, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
