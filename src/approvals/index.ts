export { defaultTrustLevels, strictest, trustLevelOf } from './default-policy.ts';
export {
  type ApprovalClick,
  checkPlanDecision,
  defaultPlanPolicy,
  type PlanPolicy,
  planBlockers,
  type StepTrust,
  stepTrustLevels,
} from './plan-decision.ts';
export { planHash } from './plan-hash.ts';
