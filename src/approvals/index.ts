export { type EnvApprovers, type PolicyResolverInput, planPolicyResolver } from './channel-policy.ts';
export { defaultTrustLevels, strictest } from './default-policy.ts';
export {
  decisionPolicy,
  type EnvelopeComparison,
  envelopeWithin,
  type FollowUpApproval,
  followUpApproval,
} from './follow-up.ts';
export { channelPatternAdmitted, grantOfferFor, grantsForClick, standingGrantRule } from './grants.ts';
export {
  type ApprovalClick,
  type ApproverLookup,
  checkDecider,
  checkPlanDecision,
  type DeciderAct,
  type DecisionSubject,
  defaultPlanPolicy,
  describeApprovers,
  isApprover,
  type PlanPolicy,
  planBlockers,
  type StepTrust,
  stepTrustLevels,
  type Tally,
  tallyPlanDecision,
} from './plan-decision.ts';
export { countPlanChanges, type PlanDiff, type PlanStepChange, planDiff } from './plan-diff.ts';
export { planHash } from './plan-hash.ts';
export {
  builtInPolicy,
  defaultSchedulePolicy,
  type EffectiveChannelPolicy,
  egressAllowed,
  groupSurfaces,
  loadPolicy,
  type Policy,
  PolicyError,
  parseChannelId,
  parsePolicy,
  policyForChannel,
  type SchedulePolicy,
  toPlanPolicy,
} from './policy.ts';
export { type CliOutput, policyCheck, policyExplain } from './policy-cli.ts';
export {
  domainProblem,
  PolicyFileSchema,
  parseDuration,
  type SchedulesPolicy,
  SchedulesPolicySchema,
  timeZoneProblem,
} from './policy-schema.ts';
