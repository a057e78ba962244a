import type { PlanPolicy } from '../approvals/index.ts';
import {
  type ChannelKey,
  type ConversationRef,
  cleanSettingText,
  ErrorCodes,
  HandoffError,
  type Identity,
  type MemoryProposal,
  maxFactChars,
  maxInstructionsChars,
  newId,
  rememberedFact,
  type Surface,
} from '../core/index.ts';
import type { AuditLog, ChannelSettingsStore } from '../storage/index.ts';

export interface ChannelSettingsDeps {
  /** Absent where the deployment keeps no channel settings: every call then says so. */
  store?: ChannelSettingsStore;
  audit: AuditLog;
  policyFor: (conversation: ConversationRef) => PlanPolicy;
  /** The plan approver rule of the channel (Gateway.isApprover). */
  isApprover: (conversation: ConversationRef, who: Identity) => Promise<boolean>;
  /** Who to ask, in the surface's own words (Slack mentions). */
  approversText: (conversation: ConversationRef) => string;
  demo: boolean;
  /** Told after a task's proposal was accepted or dismissed, to draw its result card again; a failure is ignored. */
  proposalDecided?: (taskId: string) => Promise<void>;
}

/** Most proposals from people waiting in one channel. */
export const maxOpenProposals = 20;

/** A channel's instructions and memory, as every surface lists them. */
export interface ChannelSettingsView {
  kind: 'channel_settings';
  surface: Surface;
  channel: string;
  /** From the policy file (`instructions:` in the channel's rule); changed there only. */
  policyInstructions?: string;
  instructions?: { text: string; by: string; at: string };
  memory: Array<{
    id: string;
    text: string;
    by: string;
    at: string;
    source: 'asked' | 'proposed';
    proposedBy?: string;
  }>;
  /** Facts proposed by people who are not approvers, or by the agent, waiting for Accept or Dismiss. */
  proposals: MemoryProposalView[];
  /** Whether the person looking may change them (an approver of the channel). */
  canEdit: boolean;
  demo: boolean;
}

/** A fact waiting for an approver, as a card shows it with Accept and Dismiss. */
export interface MemoryProposalView {
  id: string;
  text: string;
  /** The person who proposed it, or `the agent`. */
  proposedBy: string;
}

/** What "remember that …" did: stored at once (an approver), or proposed for an approver's Accept. */
export type RememberOutcome =
  | { status: 'stored'; message: string }
  | { status: 'proposed'; message: string; proposal: MemoryProposalView };

/** The channel-settings operations a surface offers its people. */
export type ChannelSettingsInbound = Pick<
  ChannelSettings,
  'view' | 'setInstructions' | 'clearInstructions' | 'remember' | 'forget' | 'decideProposal' | 'openProposals'
>;

/** Settings belong to a channel; the approver rule is asked of the channel's policy (any thread). */
function channelRef(c: ChannelKey & { workspace?: string }): ConversationRef {
  return { surface: c.surface, channel: c.channel, thread: '-', ...(c.workspace ? { workspace: c.workspace } : {}) };
}

function key(c: ChannelKey): ChannelKey {
  return { surface: c.surface, channel: c.channel };
}

/**
 * Standing instructions and memory per channel: set, listed and forgotten by the channel's
 * approvers; proposed by anyone else (or the agent) for an approver to accept. Every text is
 * redacted before it is stored, and every change is audited with ids and lengths only.
 */
export class ChannelSettings {
  constructor(private readonly deps: ChannelSettingsDeps) {}

  private get store(): ChannelSettingsStore {
    if (this.deps.store) return this.deps.store;
    throw new HandoffError(ErrorCodes.invalidInput, 'channel instructions and memory are not available here');
  }

  private async requireApprover(conversation: ConversationRef, who: Identity, what: string): Promise<void> {
    if (await this.deps.isApprover(conversation, who)) return;
    throw new HandoffError(
      ErrorCodes.notApprover,
      `only this channel's approvers can ${what}; ask ${this.deps.approversText(conversation)}`,
    );
  }

  private clean(conversation: ConversationRef, text: string): { text: string; counts: Record<string, number> } {
    const r = this.deps.policyFor(conversation).redaction;
    return cleanSettingText(text, r?.enabled ? r.kinds : []);
  }

  /** The channel's settings as `who` sees them (anyone in the channel may look: the agent is told the same). */
  async view(channel: ChannelKey & { workspace?: string }, who: Identity): Promise<ChannelSettingsView> {
    const conversation = channelRef(channel);
    const [instructions, memory, proposals, canEdit] = await Promise.all([
      this.store.instructions(key(channel)),
      this.store.memory(key(channel)),
      this.store.openProposals(key(channel)),
      this.deps.isApprover(conversation, who),
    ]);
    const policyInstructions = this.deps.policyFor(conversation).instructions;
    return {
      kind: 'channel_settings',
      surface: channel.surface,
      channel: channel.channel,
      ...(policyInstructions ? { policyInstructions } : {}),
      ...(instructions
        ? { instructions: { text: instructions.text, by: instructions.by.name, at: instructions.at } }
        : {}),
      memory: memory.map((f) => ({
        id: f.id,
        text: f.text,
        by: f.by.name,
        at: f.at,
        source: f.source,
        ...(f.proposedBy ? { proposedBy: f.proposedBy } : {}),
      })),
      proposals: proposals.map(proposalView),
      canEdit,
      demo: this.deps.demo,
    };
  }

  /** Sets the channel's instructions (an approver only). Returns the words to show. */
  async setInstructions(channel: ChannelKey & { workspace?: string }, by: Identity, text: string): Promise<string> {
    const conversation = channelRef(channel);
    await this.requireApprover(conversation, by, 'set its instructions');
    const raw = text.trim();
    if (!raw)
      throw new HandoffError(ErrorCodes.invalidInput, 'say what the instructions are, or clear them with `clear`');
    if (raw.length > maxInstructionsChars)
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `instructions are at most ${maxInstructionsChars} characters (these are ${raw.length})`,
      );
    const clean = this.clean(conversation, raw);
    await this.store.setInstructions(key(channel), { text: clean.text, by, at: new Date().toISOString() });
    await this.deps.audit.append({
      type: 'channel.instructions_set',
      actor: by.id,
      data: { surface: channel.surface, channel: channel.channel, length: clean.text.length, redactions: clean.counts },
    });
    return `Instructions set for this channel (${clean.text.length} characters): every new plan and run here follows them.${removedNote(clean.counts)}`;
  }

  async clearInstructions(channel: ChannelKey & { workspace?: string }, by: Identity): Promise<string> {
    await this.requireApprover(channelRef(channel), by, 'clear its instructions');
    const had = await this.store.clearInstructions(key(channel));
    if (!had) return 'This channel has no instructions to clear.';
    await this.deps.audit.append({
      type: 'channel.instructions_cleared',
      actor: by.id,
      data: { surface: channel.surface, channel: channel.channel },
    });
    return 'Instructions cleared: new plans here no longer get them.';
  }

  /**
   * "remember that …": from an approver the fact is stored at once; from anyone else it is
   * proposed, for an approver to accept. Redacted before either.
   */
  async remember(
    channel: ChannelKey & { workspace?: string },
    by: Identity,
    fact: string,
    options: { taskId?: string } = {},
  ): Promise<RememberOutcome> {
    const conversation = channelRef(channel);
    const raw = fact.trim();
    if (!raw) throw new HandoffError(ErrorCodes.invalidInput, 'say what to remember: "remember that …"');
    if (raw.length > maxFactChars)
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `a fact to remember is at most ${maxFactChars} characters (this one is ${raw.length})`,
      );
    const clean = this.clean(conversation, raw);
    const at = new Date().toISOString();
    if (await this.deps.isApprover(conversation, by)) {
      const id = newId('mem');
      await this.store.addFact(key(channel), { id, text: clean.text, by, at, source: 'asked' });
      await this.deps.audit.append({
        type: 'channel.memory_added',
        actor: by.id,
        ...(options.taskId ? { taskId: options.taskId } : {}),
        data: {
          surface: channel.surface,
          channel: channel.channel,
          factId: id,
          source: 'asked',
          length: clean.text.length,
          redactions: clean.counts,
        },
      });
      return {
        status: 'stored',
        message: `Remembered for this channel: “${clean.text}”. Every new plan and run here is told.${removedNote(clean.counts)}`,
      };
    }
    if ((await this.store.openProposals(key(channel))).length >= maxOpenProposals)
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `${maxOpenProposals} proposed facts already wait for this channel's approvers; ask one of them (${this.deps.approversText(conversation)}) to accept or dismiss some first`,
      );
    const proposal: MemoryProposal = {
      id: newId('mp'),
      channel: key(channel),
      text: clean.text,
      by,
      ...(options.taskId ? { taskId: options.taskId } : {}),
      at,
    };
    await this.store.propose(proposal);
    await this.deps.audit.append({
      type: 'channel.memory_proposed',
      actor: by.id,
      ...(options.taskId ? { taskId: options.taskId } : {}),
      data: {
        surface: channel.surface,
        channel: channel.channel,
        proposalId: proposal.id,
        length: clean.text.length,
        redactions: clean.counts,
      },
    });
    return {
      status: 'proposed',
      message: `Only this channel's approvers add to its memory: your fact waits for one of them (${this.deps.approversText(conversation)}) to accept it.${removedNote(clean.counts)}`,
      proposal: { id: proposal.id, text: proposal.text, proposedBy: by.name },
    };
  }

  /** Forgets a fact (an approver only). */
  async forget(channel: ChannelKey & { workspace?: string }, by: Identity, factId: string): Promise<string> {
    await this.requireApprover(channelRef(channel), by, 'forget what it remembers');
    if (!/^[A-Za-z0-9_-]{1,40}$/.test(factId)) throw new HandoffError(ErrorCodes.invalidInput, 'that is not a fact id');
    const removed = await this.store.removeFact(key(channel), factId);
    if (!removed)
      throw new HandoffError(ErrorCodes.notFound, 'this channel remembers no such fact (already forgotten?)');
    await this.deps.audit.append({
      type: 'channel.memory_removed',
      actor: by.id,
      data: { surface: channel.surface, channel: channel.channel, factId },
    });
    return `Forgotten: “${removed.text}”.`;
  }

  /**
   * Accept or Dismiss on a proposed fact (an approver of its channel; the first click wins).
   * `surface` is where the click came from: a proposal of another surface is not found there.
   */
  async decideProposal(input: {
    proposalId: string;
    by: Identity;
    outcome: 'accept' | 'dismiss';
    surface: Surface;
  }): Promise<string> {
    if (!/^[A-Za-z0-9_-]{1,40}$/.test(input.proposalId))
      throw new HandoffError(ErrorCodes.invalidInput, 'that is not a proposal id');
    const stale = () =>
      new HandoffError(ErrorCodes.staleApproval, 'this proposal was already accepted or dismissed, or has expired');
    const proposal = await this.store.proposal(input.proposalId);
    if (!proposal || proposal.channel.surface !== input.surface) throw stale();
    await this.requireApprover(channelRef(proposal.channel), input.by, 'add to its memory');
    const taken = await this.store.takeProposal(input.proposalId);
    if (!taken) throw stale();
    const common = {
      actor: input.by.id,
      ...(taken.taskId ? { taskId: taken.taskId } : {}),
    };
    if (input.outcome === 'dismiss') {
      await this.deps.audit.append({
        type: 'channel.memory_dismissed',
        ...common,
        data: { surface: taken.channel.surface, channel: taken.channel.channel, proposalId: taken.id },
      });
      await this.redrawCard(taken.taskId);
      return 'Dismissed: it is not remembered.';
    }
    const id = newId('mem');
    try {
      await this.store.addFact(taken.channel, {
        id,
        text: taken.text,
        by: input.by,
        at: new Date().toISOString(),
        source: 'proposed',
        proposedBy: taken.by?.name ?? 'the agent',
      });
    } catch (err) {
      // A full memory: the proposal stays open for after someone forgets a fact.
      await this.store.propose(taken);
      throw err;
    }
    await this.deps.audit.append({
      type: 'channel.memory_added',
      ...common,
      data: {
        surface: taken.channel.surface,
        channel: taken.channel.channel,
        factId: id,
        source: 'proposed',
        proposalId: taken.id,
        length: taken.text.length,
      },
    });
    await this.redrawCard(taken.taskId);
    return `Remembered for this channel: “${taken.text}”.`;
  }

  private async redrawCard(taskId: string | undefined): Promise<void> {
    // The decision is recorded: a card that cannot be redrawn now is redrawn with the next change.
    if (taskId) await this.deps.proposalDecided?.(taskId).catch(() => undefined);
  }

  /** The proposals of a task still waiting for an approver (the agent's, shown on its result card). */
  async openProposals(taskId: string): Promise<MemoryProposalView[]> {
    const store = this.deps.store;
    if (!store) return [];
    const out: MemoryProposalView[] = [];
    for (const id of await store.proposalIdsOf(taskId)) {
      const p = await store.proposal(id);
      if (p) out.push(proposalView(p));
    }
    return out;
  }
}

export type SettingsCommand = { kind: 'instructions'; text?: string; clear?: boolean } | { kind: 'memory' };

/** `instructions`, `instructions clear`, `instructions <text>`, `memory`; undefined for anything else. */
export function parseSettingsCommand(text: string): SettingsCommand | undefined {
  const trimmed = text.trim();
  if (/^memory(\s+list)?$/i.test(trimmed)) return { kind: 'memory' };
  const m = /^instructions(?:\s+([\s\S]*))?$/i.exec(trimmed);
  if (!m) return undefined;
  const rest = (m[1] ?? '').trim();
  if (!rest || /^(show|list)$/i.test(rest)) return { kind: 'instructions' };
  if (/^clear$/i.test(rest)) return { kind: 'instructions', clear: true };
  return { kind: 'instructions', text: rest };
}

/** The settings as plain lines, for surfaces that answer in text (Teams): ids to forget or accept by. */
export function channelSettingsText(view: ChannelSettingsView): string {
  const lines: string[] = [];
  if (view.policyInstructions) lines.push(`Instructions from the policy file: ${view.policyInstructions}`);
  lines.push(
    view.instructions
      ? `Instructions (set by ${view.instructions.by}): ${view.instructions.text}`
      : 'Instructions: none set.',
  );
  lines.push(view.memory.length ? `Memory (${view.memory.length}):` : 'Memory: nothing remembered yet.');
  for (const f of view.memory) lines.push(`• ${f.text} [${f.id}]`);
  if (view.proposals.length) lines.push('Proposed, waiting for an approver:');
  for (const p of view.proposals) lines.push(`• ${p.text} (by ${p.proposedBy}) [${p.id}]`);
  if (view.canEdit && (view.memory.length || view.proposals.length))
    lines.push('Say “forget <id>” to forget a fact, “accept <id>” or “dismiss <id>” for a proposal.');
  if (!view.canEdit) lines.push("Only this channel's approvers change its instructions and memory.");
  return lines.join('\n');
}

/**
 * The text commands of a surface without buttons for them (Teams): `instructions …`,
 * `memory`, `remember that …`, `forget <id>`, `accept <id>`, `dismiss <id>`. Undefined when
 * the text is none of them (it is a request); a refusal comes back as an error answer.
 */
export async function channelSettingsCommand(
  settings: ChannelSettingsInbound,
  channel: ChannelKey & { workspace?: string },
  who: Identity,
  text: string,
): Promise<{ text: string; tone: 'info' | 'error' } | undefined> {
  const command = parseSettingsCommand(text);
  const fact = command ? undefined : rememberedFact(text);
  const decide = /^(forget|accept|dismiss)\s+([A-Za-z0-9_-]{1,40})$/i.exec(text.trim());
  if (!command && fact === undefined && !decide) return undefined;
  try {
    if (command?.kind === 'memory' || (command?.kind === 'instructions' && !command.text && !command.clear))
      return { text: channelSettingsText(await settings.view(channel, who)), tone: 'info' };
    if (command?.kind === 'instructions' && command.clear)
      return { text: await settings.clearInstructions(channel, who), tone: 'info' };
    if (command?.kind === 'instructions' && command.text)
      return { text: await settings.setInstructions(channel, who, command.text), tone: 'info' };
    if (fact !== undefined) return { text: (await settings.remember(channel, who, fact)).message, tone: 'info' };
    const [, verb, id] = decide!;
    if (verb!.toLowerCase() === 'forget') return { text: await settings.forget(channel, who, id!), tone: 'info' };
    const outcome = verb!.toLowerCase() === 'accept' ? 'accept' : 'dismiss';
    return {
      text: await settings.decideProposal({ proposalId: id!, by: who, outcome, surface: channel.surface }),
      tone: 'info',
    };
  } catch (err) {
    if (err instanceof HandoffError && err.code !== 'handoff_internal') return { text: err.message, tone: 'error' };
    throw err;
  }
}

function proposalView(p: MemoryProposal): MemoryProposalView {
  return { id: p.id, text: p.text, proposedBy: p.by?.name ?? 'the agent' };
}

function removedNote(counts: Record<string, number>): string {
  const parts = Object.entries(counts).map(([kind, n]) => `${n} ${kindWords[kind] ?? kind}${n === 1 ? '' : 's'}`);
  return parts.length > 0 ? ` Removed before storing: ${parts.join(', ')}.` : '';
}

const kindWords: Record<string, string> = {
  card: 'card number',
  secret: 'secret',
  iban: 'IBAN',
  email: 'email address',
  phone: 'phone number',
};
