import { z } from 'zod';
import { DeliverableTypeSchema } from './artifact.ts';
import { ChannelContextSchema } from './channel-settings.ts';
import { ActionKindSchema, TrustLevelSchema } from './trust.ts';

export const PlanStepSchema = z.object({
  title: z.string().min(1).max(200),
  detail: z.string().max(2000).default(''),
  /** The action kinds the step needs; policy gives each a trust level. */
  actions: z.array(ActionKindSchema).min(1).max(13),
});
export type PlanStep = z.infer<typeof PlanStepSchema>;

export const DeliverableSpecSchema = z.object({
  name: z
    .string()
    .min(1)
    .max(120)
    .regex(/^[A-Za-z0-9][A-Za-z0-9 ._()-]*$/, 'a plain file name: letters, digits, space, . _ ( ) -'),
  type: DeliverableTypeSchema,
});
export type DeliverableSpec = z.infer<typeof DeliverableSpecSchema>;

export const BudgetSchema = z.object({
  maxTokens: z.number().int().positive(),
  maxCostUsd: z.number().positive(),
  maxWallTimeMs: z.number().int().positive(),
});
export type Budget = z.infer<typeof BudgetSchema>;

/** A connector tool an approved run may call, with the level it was approved at. */
export const EnvelopeConnectorToolSchema = z.object({
  /** The model's name for it: `<connector>__<tool>`. */
  name: z.string().min(1).max(64),
  connector: z.string().min(1).max(30),
  /** The connector's name for people (`title:` in handoff.yaml). */
  title: z.string().min(1).max(80).optional(),
  tool: z.string().min(1).max(128),
  action: z.enum(['connector_read', 'connector_write']),
  trust: TrustLevelSchema,
});
export type EnvelopeConnectorTool = z.infer<typeof EnvelopeConnectorToolSchema>;

/**
 * What an approved run may do. Approval binds to the hash of plan version + envelope,
 * so anything outside it needs a new approval.
 */
export const EnvelopeSchema = z.object({
  /** Agent tools the run may call. */
  tools: z.array(z.string().min(1).max(100)).max(100),
  /** Domains the sandbox may reach (empty: no network at all). */
  egressDomains: z.array(z.string().min(1).max(253)).max(50),
  /** Input file names the run may overwrite. */
  mayOverwrite: z.array(z.string().min(1).max(255)).max(100),
  /** File names the run may delete. */
  mayDelete: z.array(z.string().min(1).max(255)).max(100),
  deliverableTypes: z.array(DeliverableTypeSchema).max(7),
  budget: BudgetSchema,
  /** Connector tools the plan needs (also named in `tools`); absent in plans made before connectors. */
  connectors: z.array(EnvelopeConnectorToolSchema).max(100).optional(),
  /** Whether the runner may fetch web pages (web_fetch) from `egressDomains`. */
  webFetch: z.boolean().optional(),
  /** Whether the model may use the API's web search, limited to `egressDomains`. */
  webSearch: z.boolean().optional(),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;

/**
 * One independent part of the work, run as a child run in its own sandbox under the
 * plan's envelope with a slice of its budget (docs/architecture.md, Workstreams).
 */
export const WorkstreamSchema = z.object({
  /** Short and stable: names the workstream's folder for the merge step (`/workspace/in/workstreams/<id>/`). */
  id: z
    .string()
    .min(1)
    .max(32)
    .regex(/^[a-z0-9][a-z0-9_-]*$/, 'lower-case letters, digits, _ and -'),
  title: z.string().min(1).max(120),
  /** What this part does and what files it hands back, for the child run. */
  brief: z.string().min(1).max(2000),
  /** Input file names this part needs; all inputs when absent. */
  inputs: z.array(z.string().min(1).max(255)).max(50).optional(),
});
export type Workstream = z.infer<typeof WorkstreamSchema>;

/** What the parent does when a workstream fails: retry it once, merge without it, or stop. */
export const ChildFailureRuleSchema = z.enum(['retry', 'continue', 'fail']);
export type ChildFailureRule = z.infer<typeof ChildFailureRuleSchema>;

/** What the model proposes; the runner adds the envelope and bookkeeping. */
export const PlanDraftSchema = z.object({
  summary: z.string().min(1).max(2000),
  steps: z.array(PlanStepSchema).min(1).max(20),
  deliverables: z.array(DeliverableSpecSchema).min(1).max(20),
  /** Connector tools (`<connector>__<tool>`) the work needs. */
  connectorTools: z.array(z.string().min(1).max(64)).max(100).optional(),
  /** Web domains the work needs to reach (exact names or `*.example.com`). */
  egressDomains: z.array(z.string().min(1).max(253)).max(50).optional(),
  /** Input file names the work must overwrite. */
  mayOverwrite: z.array(z.string().min(1).max(255)).max(100).optional(),
  /** Input file names the work must delete. */
  mayDelete: z.array(z.string().min(1).max(255)).max(100).optional(),
  /** Independent parts run in parallel, each in its own sandbox; the run then merges their files. */
  workstreams: z
    .array(WorkstreamSchema)
    .min(2)
    .max(8)
    .refine((w) => new Set(w.map((x) => x.id)).size === w.length, 'workstream ids must be unique')
    .optional(),
  /** With workstreams: what the merge step does with their files. */
  merge: z.string().min(1).max(2000).optional(),
  /** With workstreams: what happens when one fails (default `fail`). */
  onChildFailure: ChildFailureRuleSchema.optional(),
});
export type PlanDraft = z.infer<typeof PlanDraftSchema>;

export const PlanSchema = PlanDraftSchema.extend({
  taskId: z.string(),
  version: z.number().int().positive(),
  envelope: EnvelopeSchema,
  /** Estimated tokens for the run, shown on the card. */
  estimatedTokens: z.number().int().nonnegative(),
  estimatedCostUsd: z.number().nonnegative(),
  model: z.string(),
  demo: z.boolean(),
  createdAt: z.string(),
  /** The channel's instructions and memory as the planner saw them; the run is given the same. */
  channelContext: ChannelContextSchema.optional(),
});
export type Plan = z.infer<typeof PlanSchema>;
