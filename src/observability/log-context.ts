import { AsyncLocalStorage } from 'node:async_hooks';

/** Ids that every log line written while working on a task carries. */
export interface LogContext {
  taskId?: string;
  runId?: string;
  /** A workstream child's id, for lines written while a fan-out child runs. */
  workstreamId?: string;
}

const storage = new AsyncLocalStorage<LogContext>();

/**
 * Runs `fn` with `context` added to every log line it (and everything it awaits) writes,
 * on top of any context it is already inside. Job processors wrap their work in this, so a
 * line deep in a helper that was never handed the task id still says which task it is about.
 */
export function withLogContext<T>(context: LogContext, fn: () => T): T {
  const defined = Object.fromEntries(Object.entries(context).filter(([, v]) => typeof v === 'string' && v));
  return storage.run({ ...storage.getStore(), ...defined }, fn);
}

/** The context of the current async call chain: what the logger's mixin adds to a line. */
export function currentLogContext(): LogContext {
  return storage.getStore() ?? {};
}

/** The ids a queued job's log lines carry, read defensively: its data is validated later, by the processor. */
export function jobLogContext(data: unknown): LogContext {
  const d = (data ?? {}) as Record<string, unknown>;
  const context: LogContext = {};
  if (typeof d.taskId === 'string') context.taskId = d.taskId;
  if (typeof d.runId === 'string') context.runId = d.runId;
  if (typeof d.workstreamId === 'string') context.workstreamId = d.workstreamId;
  return context;
}
