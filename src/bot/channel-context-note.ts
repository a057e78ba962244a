import type { ChannelContext } from '../core/index.ts';

/**
 * What a plan card says about the channel settings its planner was given (the plan's
 * snapshot, which its run is given too): counts only, never the texts, which may be long;
 * an approver lists them with the memory command. Undefined when the plan was given none.
 */
export function channelContextNote(context: ChannelContext | undefined): string | undefined {
  if (!context) return undefined;
  const instructions = !!context.policyInstructions || !!context.instructions;
  const n = context.memory.length;
  const facts = `${n} remembered fact${n === 1 ? '' : 's'}`;
  if (instructions && n > 0) return `Follows this channel's instructions and ${facts}.`;
  if (instructions) return "Follows this channel's instructions.";
  if (n > 0) return `Follows this channel's ${facts}.`;
  return undefined;
}
