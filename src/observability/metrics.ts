import { Counter, collectDefaultMetrics, Registry } from 'prom-client';

/** Prometheus metrics for one process; served at /metrics by the bot. */
export class Metrics {
  readonly registry = new Registry();
  readonly tasksCreated = new Counter({
    name: 'handoff_tasks_created_total',
    help: 'Tasks created',
    labelNames: ['surface'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
