import type { ConversationRef } from '../core/index.ts';
import type { PlanPolicy } from './plan-decision.ts';
import { type Policy, policyForChannel, toPlanPolicy } from './policy.ts';

/** Approvers named outside the policy file (a surface's setting, e.g. SLACK_APPROVERS). */
export interface EnvApprovers {
  /** User ids; may be empty when only groups are named. */
  users: readonly string[];
  /** Group ids (Slack user groups `S…`); membership is resolved per surface. */
  groups: readonly string[];
}

/** What decides the plan policy of each conversation. */
export interface PolicyResolverInput {
  /** The loaded policy (the built-in one when there is no policy file). */
  doc: Policy;
  /** Whether `doc` came from a policy file (HANDOFF_POLICY); false for the built-in policy. */
  hasPolicyFile: boolean;
  /** How Handoff runs: `handoff dev` alone lets one person try the whole flow in the console. */
  mode: 'dev' | 'bot' | 'runner';
  /** The deployment's self-approval setting; when set it wins over everything else. */
  allowSelfApproval?: boolean | undefined;
  /** The deployment's approval expiry, used when there is no policy file. */
  approvalExpiryMs: number;
  /**
   * Approvers from a surface's own setting, for a conversation whose policy names none;
   * undefined when that surface names none there (anyone in the conversation may approve).
   * Given every conversation, so a new surface adds its setting here, not in the resolver.
   */
  envApprovers?: ((conversation: ConversationRef) => EnvApprovers | undefined) | undefined;
}

/**
 * Builds the per-conversation plan policy from the policy file and the deployment's
 * settings. The rules, in order of precedence:
 *
 * - Self-approval: the explicit setting wins; then the policy file's `requesterMayApprove`;
 *   without a policy file, `handoff dev` allows it in the web console only (one person
 *   trying the whole flow; a chat workspace has other people to ask).
 * - Approval expiry: the policy file's when there is one, else the deployment's setting.
 * - Approvers: the policy's for the channel when it names any, else `envApprovers`
 *   (users, and groups when it names any), else anyone in the conversation.
 *
 * Pure: the returned function reads nothing but its input.
 */
export function planPolicyResolver(input: PolicyResolverInput): (conversation: ConversationRef) => PlanPolicy {
  const { doc, hasPolicyFile, mode, allowSelfApproval, approvalExpiryMs, envApprovers } = input;
  return (conversation) => {
    const effective = policyForChannel(doc, conversation);
    const planPolicy: PlanPolicy = {
      ...toPlanPolicy(effective),
      allowSelfApproval:
        allowSelfApproval ??
        (hasPolicyFile
          ? effective.requesterMayApprove
          : (mode === 'dev' && conversation.surface === 'web') || effective.requesterMayApprove),
      approvalExpiryMs: hasPolicyFile ? effective.approvalExpiryMs : approvalExpiryMs,
    };
    const fromEnv = planPolicy.approvers ? undefined : envApprovers?.(conversation);
    if (fromEnv) {
      planPolicy.approvers = fromEnv.users;
      if (fromEnv.groups.length > 0) planPolicy.approverGroups = fromEnv.groups;
    }
    return planPolicy;
  };
}
