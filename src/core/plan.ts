import { z } from 'zod';
import { DeliverableTypeSchema } from './artifact.ts';
import { ActionKindSchema } from './trust.ts';

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
});
export type Envelope = z.infer<typeof EnvelopeSchema>;

/** What the model proposes; the runner adds the envelope and bookkeeping. */
export const PlanDraftSchema = z.object({
  summary: z.string().min(1).max(2000),
  steps: z.array(PlanStepSchema).min(1).max(20),
  deliverables: z.array(DeliverableSpecSchema).min(1).max(20),
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
});
export type Plan = z.infer<typeof PlanSchema>;
