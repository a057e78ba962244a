/**
 * One base class for every error Handoff raises on purpose. `code` is stable and
 * safe to show to people and to match on in tests; `message` is plain words.
 */
export class HandoffError extends Error {
  readonly code: string;
  /** True when retrying the same work may succeed (network blips, Docker restarting). */
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HandoffError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** Wraps anything thrown into a HandoffError so handlers deal with one shape. */
export function asHandoffError(err: unknown, code = 'handoff_internal'): HandoffError {
  if (err instanceof HandoffError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HandoffError(code, message, { cause: err });
}

/**
 * Why a signal was aborted, as an error code: the code of a HandoffError reason, or the
 * reason itself when it is a string (BullMQ cancels jobs with a plain string).
 */
export function abortCode(signal: AbortSignal): string | undefined {
  if (!signal.aborted) return undefined;
  return typeof signal.reason === 'string' ? signal.reason : asHandoffError(signal.reason).code;
}

export const ErrorCodes = {
  illegalTransition: 'handoff_illegal_transition',
  notFound: 'handoff_not_found',
  invalidInput: 'handoff_invalid_input',
  staleApproval: 'handoff_stale_approval',
  approvalExpired: 'handoff_approval_expired',
  notApprover: 'handoff_not_approver',
  /** Group membership could not be looked up (Slack `usergroups.users.list` failed); the click is refused. */
  approverLookupFailed: 'handoff_approver_lookup_failed',
  planNotApprovable: 'handoff_plan_not_approvable',
  planInvalid: 'handoff_plan_invalid',
  demoUnsupported: 'handoff_demo_unsupported',
  sandboxUnavailable: 'handoff_sandbox_unavailable',
  sandboxFailed: 'handoff_sandbox_failed',
  cancelled: 'handoff_cancelled',
  runTimeout: 'handoff_run_timeout',
  budgetExceeded: 'handoff_budget_exceeded',
  deliverablesMissing: 'handoff_deliverables_missing',
  modelFailed: 'handoff_model_failed',
  /** The model's reply was cut off at max_tokens more times than the run allows. */
  modelTruncated: 'handoff_model_truncated',
  /** The model declined to go on (stop reason `refusal`). */
  modelRefused: 'handoff_model_refused',
  /** The model stopped for a reason the loop cannot continue from (e.g. the context window is full). */
  modelStopped: 'handoff_model_stopped',
  /** Another runner took this run over (its lock expired); this one must stop touching it. */
  runTakenOver: 'handoff_run_taken_over',
  /** The runner is shutting down: the job goes back to the queue for another runner. */
  runnerStopping: 'handoff_runner_stopping',
  /** The audit record of an action could not be written; the action did not happen. */
  auditUnavailable: 'handoff_audit_unavailable',
  /** The run wrote more than its output cap. */
  outputLimit: 'handoff_output_limit',
  queueUnavailable: 'handoff_queue_unavailable',
  runnerLost: 'handoff_runner_lost',
  config: 'handoff_config_invalid',
  /** The bot cannot post in a channel: it is not a member, or the channel is gone or archived. */
  channelUnavailable: 'handoff_channel_unavailable',
  /** A schedule rule that cannot be parsed, or one the channel's policy does not allow. */
  scheduleInvalid: 'handoff_schedule_invalid',
  /** A connector (MCP server) could not be started, reached or listed. */
  connectorFailed: 'handoff_connector_failed',
  /** A per-user connector has no connection for the person it would act as. */
  connectionRequired: 'handoff_connection_required',
} as const;
