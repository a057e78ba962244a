import { z } from 'zod';

/**
 * A W3C Trace Context (https://www.w3.org/TR/trace-context/) as it travels in job data and
 * on the task record, so one trace follows a task from the request in the bot to the
 * deliverable, across processes. Carries ids only, never content.
 */
export const TraceContextSchema = z.object({
  /** `version-traceid-spanid-flags`, e.g. `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`. */
  traceparent: z.string().regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/),
  /** Vendor entries, as the W3C header carries them (bounded). */
  tracestate: z.string().max(512).optional(),
});
export type TraceContext = z.infer<typeof TraceContextSchema>;
