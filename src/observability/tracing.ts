import {
  type Attributes,
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  type TextMapPropagator,
  trace,
} from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TraceContext, Usage } from '../core/index.ts';

/**
 * OpenTelemetry tracing: one trace per task, from the request in the bot to the
 * deliverable, across bot and runner processes (the W3C trace context travels in job data
 * and on the task record). Off unless an OTLP endpoint is configured; then every helper
 * here is a plain call of the function it wraps and the SDK is never even loaded.
 *
 * Span names and attributes are listed in docs/operations.md (Tracing). Attributes carry
 * ids, names, counts and outcomes only: never prompt text, file contents, commands or secrets.
 */

/** What tracing logs through (pino's methods match). */
export interface TracingLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface TracingOptions {
  /** Full URL spans are POSTed to (OTLP/HTTP, JSON). Undefined: tracing off. */
  url: string | undefined;
  serviceName: string;
  logger: TracingLogger;
}

export interface Tracing {
  readonly enabled: boolean;
  /** Exports what is buffered and stops. Idempotent; bounded by `timeoutMs`. */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** The spans' URL from the standard variables: the traces endpoint as given, else `<endpoint>/v1/traces`. */
export function otlpTracesUrl(settings: {
  otlpEndpoint?: string | undefined;
  otlpTracesEndpoint?: string | undefined;
}): string | undefined {
  if (settings.otlpTracesEndpoint) return settings.otlpTracesEndpoint;
  if (settings.otlpEndpoint) return `${settings.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

const tracerName = 'handoff';

/** One provider per process; a second start (bot and runner in one test process) shares it. */
let active:
  | {
      provider: { shutdown(): Promise<void> };
      propagator: TextMapPropagator;
      users: number;
      exporter: WarnOnceExporterState;
    }
  | undefined;

interface WarnOnceExporterState {
  failures: number;
  exports: number;
}

/** How many exports were attempted and how many failed since tracing started (tests). */
export function tracingExportStats(): { exports: number; failures: number } | undefined {
  return active ? { exports: active.exporter.exports, failures: active.exporter.failures } : undefined;
}

/**
 * Starts tracing when `url` is set: a tracer provider with a batching OTLP/HTTP exporter,
 * registered globally with an AsyncLocalStorage context manager. A collector that is down
 * costs one warning (and one line when it answers again), never an error per export.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  if (!options.url) return { enabled: false, shutdown: async () => undefined };
  // Loaded only when tracing is on: nothing of the SDK is paid for otherwise.
  sdk ??= loadSdk();
  const [
    { NodeTracerProvider },
    { BatchSpanProcessor },
    { OTLPTraceExporter },
    { resourceFromAttributes },
    semconv,
    { ExportResultCode, W3CTraceContextPropagator },
  ] = await sdk;
  // Synchronous from here on, so two starts at once still make one provider.
  if (active) {
    active.users += 1;
    return handle(options.logger);
  }
  const { logger } = options;
  const where = redactUrl(options.url);
  const state: WarnOnceExporterState = { failures: 0, exports: 0 };
  const otlp = new OTLPTraceExporter({ url: options.url });
  let failing = false;
  // Each failed export reaches this callback; the SDK's own error handler only reaches
  // OpenTelemetry's diag logger, which Handoff leaves unset (silent).
  const exporter: SpanExporter = {
    export(spans, done) {
      state.exports += 1;
      otlp.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) {
          state.failures += 1;
          if (!failing) {
            failing = true;
            logger.warn(
              { endpoint: where, err: result.error?.message?.slice(0, 200) },
              'OTLP trace export failed: spans are dropped while the collector is unreachable; Handoff goes on (logged once until it answers again)',
            );
          }
        } else if (failing) {
          failing = false;
          logger.info({ endpoint: where }, 'OTLP trace export works again');
        }
        done(result);
      });
    },
    shutdown: () => otlp.shutdown(),
    forceFlush: () => otlp.forceFlush(),
  };
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      [semconv.ATTR_SERVICE_NAME]: options.serviceName,
    }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  // Global tracer provider, AsyncLocalStorage context manager and W3C propagator.
  provider.register();
  active = { provider, propagator: new W3CTraceContextPropagator(), users: 1, exporter: state };
  logger.info({ endpoint: where, serviceName: options.serviceName }, 'tracing: exporting spans over OTLP/HTTP');
  return handle(logger);
}

let sdk: ReturnType<typeof loadSdk> | undefined;

function loadSdk() {
  return Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
    import('@opentelemetry/core'),
  ]);
}

function handle(logger: TracingLogger): Tracing {
  let done = false;
  return {
    enabled: true,
    async shutdown(timeoutMs = 3000) {
      if (done || !active) return;
      done = true;
      active.users -= 1;
      if (active.users > 0) return;
      const { provider } = active;
      active = undefined;
      let timer: NodeJS.Timeout | undefined;
      // A collector that is down must not hold up a shutdown: what is not out by then is dropped.
      await Promise.race([
        provider.shutdown().catch((err: unknown) => logger.debug({ err }, 'tracing: shutdown')),
        new Promise((r) => {
          timer = setTimeout(r, timeoutMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
      trace.disable();
      context.disable();
    },
  };
}

const tracer = () => trace.getTracer(tracerName);

/** What a span ends with, from the wrapped call's result. */
export type EndAttributes<T> = (result: T) => Attributes;

export interface SpanOptions<T> {
  /** Attributes read from the result when the call returns. */
  end?: EndAttributes<T>;
  /** Errors that are control flow (a parked run), not failures: the span ends OK with `handoff.outcome`. */
  expected?: (err: unknown) => boolean;
  /** The parent (default: the active span). */
  parent?: Context;
}

/**
 * Runs `fn` inside a new span that ends when it settles. A thrown error marks the span
 * failed with its class and code only (messages may quote what a person or the model wrote).
 */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  options: SpanOptions<T> = {},
): Promise<T> {
  if (!active) return await fn(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  return await tracer().startActiveSpan(name, { attributes }, options.parent ?? context.active(), async (span) => {
    try {
      const result = await fn(span);
      if (options.end) span.setAttributes(options.end(result));
      return result;
    } catch (err) {
      const kind = errorKind(err);
      if (options.expected?.(err)) span.setAttribute('handoff.outcome', kind);
      else {
        span.setStatus({ code: SpanStatusCode.ERROR, message: kind });
        span.setAttribute('error.type', kind);
      }
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Continues the trace `carrier` names (from job data or a task record) with a new span:
 * the way a runner joins the bot's trace. Without a carrier the span starts a new trace.
 */
export async function continueTrace<T>(
  carrier: TraceContext | undefined,
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  options: Omit<SpanOptions<T>, 'parent'> = {},
): Promise<T> {
  if (!active) return await fn(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  const parent = carrier ? active.propagator.extract(ROOT_CONTEXT, { ...carrier }, defaultTextMapGetter) : ROOT_CONTEXT;
  return await withSpan(name, attributes, fn, { ...options, parent });
}

/**
 * `{ trace }` for the active span, to spread into job data or a record; `{}` when tracing
 * is off or no span is active.
 */
export function traceField(): { trace?: TraceContext } {
  if (!active) return {};
  const carrier: Record<string, string> = {};
  active.propagator.inject(context.active(), carrier, defaultTextMapSetter);
  if (!carrier.traceparent) return {};
  return {
    trace: { traceparent: carrier.traceparent, ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}) },
  };
}

/** `{ trace }` for a context read from a record or job (to carry it on), or `{}` when there is none. */
export function traceOf(carrier: TraceContext | undefined): { trace?: TraceContext } {
  return carrier ? { trace: carrier } : {};
}

/** `trace_id` and `span_id` of the active span, for log lines; `{}` when there is none. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  if (!active) return {};
  const span = trace.getActiveSpan()?.spanContext();
  if (!span || !trace.isSpanContextValid(span)) return {};
  return { trace_id: span.traceId, span_id: span.spanId };
}

/** A model call (`createMessage`): model id, stop reason and token counts; never the prompt or reply. */
export function traceModelCall<R extends { usage: Usage; model: string; stopReason: string | null }>(
  model: string,
  call: () => Promise<R>,
): Promise<R> {
  return withSpan('model.call', { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': model }, call, {
    end: (r) => ({
      'gen_ai.response.model': r.model,
      'gen_ai.response.finish_reasons': r.stopReason ? [r.stopReason] : [],
      'gen_ai.usage.input_tokens': r.usage.inputTokens,
      'gen_ai.usage.output_tokens': r.usage.outputTokens,
      'handoff.usage.cache_read_tokens': r.usage.cacheReadTokens,
      'handoff.usage.cache_write_tokens': r.usage.cacheWriteTokens,
    }),
  });
}

/** A tool call through the policy gate: tool name, action kind, trust level and decision; never its input. */
export function traceToolCall<
  R extends {
    kind: string;
    action?: string | undefined;
    trust: string;
    decision?: string;
    result?: { isError: boolean };
  },
>(tool: string, call: () => Promise<R>): Promise<R> {
  return withSpan('tool.call', { 'handoff.tool.name': tool }, call, {
    end: (r) => ({
      ...(r.action ? { 'handoff.tool.action': r.action } : {}),
      'handoff.tool.trust': r.trust,
      // A call that waits for a person ends its span as `paused` (or `question`); the run resumes in a new one.
      'handoff.tool.decision': r.kind === 'result' ? (r.decision ?? 'ran') : r.kind === 'pause' ? 'paused' : r.kind,
      ...(r.result ? { 'handoff.tool.is_error': r.result.isError } : {}),
    }),
  });
}

/** A command in a sandbox: the program's name (argv[0]) only, exit code, duration, timeout and OOM. */
export function traceSandboxExec<
  R extends { exitCode: number; durationMs: number; timedOut: boolean; oomKilled: boolean },
>(argv: readonly string[], call: () => Promise<R>): Promise<R> {
  return withSpan('sandbox.exec', { 'process.executable.name': argv[0] ?? '' }, call, {
    end: (r) => ({
      'process.exit.code': r.exitCode,
      'handoff.sandbox.duration_ms': r.durationMs,
      'handoff.sandbox.timed_out': r.timedOut,
      'handoff.sandbox.oom_killed': r.oomKilled,
    }),
  });
}

function errorKind(err: unknown): string {
  if (err && typeof err === 'object') {
    const code = (err as { code?: unknown }).code;
    const name = (err as { name?: unknown }).name;
    if (typeof code === 'string' && code) return code.slice(0, 100);
    if (typeof name === 'string' && name) return name.slice(0, 100);
  }
  return 'Error';
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
