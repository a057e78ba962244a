export { currentLogContext, jobLogContext, type LogContext, withLogContext } from './log-context.ts';
export { createLogger, type Logger, throttledLog } from './logger.ts';
export { type ChatApiOutcome, Metrics, type QueueDepth, tokenTypes } from './metrics.ts';
export {
  continueTrace,
  otlpTracesUrl,
  startTracing,
  type Tracing,
  traceField,
  traceLogFields,
  traceModelCall,
  traceOf,
  traceSandboxExec,
  traceToolCall,
  tracingExportStats,
  withSpan,
} from './tracing.ts';
