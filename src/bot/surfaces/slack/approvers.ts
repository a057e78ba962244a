import type { webApi } from '@slack/bolt';

/**
 * Who may approve plans, per Slack channel: user ids (`U…`/`W…`) and user groups
 * (`S…`, resolved with usergroups.users.list). The key `*` applies to channels that are
 * not listed. A channel with no entry (and no `*`) lets anyone in it approve, except
 * the requester unless self-approval is allowed.
 */
export type SlackApproverMap = Readonly<Record<string, readonly string[]>>;

export interface ApproverCheck {
  ok: boolean;
  /** Words for the person who clicked, when refused. */
  reason?: string;
}

export class SlackApprovers {
  private readonly groups = new Map<string, { users: Set<string>; at: number }>();

  constructor(
    private readonly client: webApi.WebClient,
    private readonly map: SlackApproverMap,
    private readonly allowSelfApproval: boolean,
    private readonly groupTtlMs = 5 * 60_000,
  ) {}

  /** The configured entries for a channel, or undefined when anyone there may approve. */
  entriesFor(channel: string): readonly string[] | undefined {
    return this.map[channel] ?? this.map['*'];
  }

  /** Whether `userId` is an approver in `channel` (anyone is, when the channel has no list). */
  async isApprover(channel: string, userId: string): Promise<boolean> {
    const entries = this.entriesFor(channel);
    if (!entries) return true;
    if (entries.includes(userId)) return true;
    for (const entry of entries) {
      if (entry.startsWith('S') && (await this.groupMembers(entry)).has(userId)) return true;
    }
    return false;
  }

  /**
   * Checks a decision on a plan: the clicker must be an approver of the task's channel,
   * and the requester cannot approve their own plan unless policy allows it. The
   * requester may always deny their own plan.
   */
  async check(
    input: { channel: string; requesterId: string; userId: string },
    outcome: 'approved' | 'denied' | 'changes',
  ): Promise<ApproverCheck> {
    const { channel, requesterId, userId } = input;
    if (userId === requesterId) {
      if (outcome !== 'approved' || this.allowSelfApproval) return { ok: true };
      return { ok: false, reason: `You cannot approve your own request; ask ${this.mention(channel)}.` };
    }
    if (await this.isApprover(channel, userId)) return { ok: true };
    return { ok: false, reason: `You are not an approver here; ask ${this.mention(channel)}.` };
  }

  /** "<@U1>, <!subteam^S1>" — who to ask in a channel. */
  mention(channel: string): string {
    const entries = this.entriesFor(channel);
    if (!entries || entries.length === 0) return 'someone else in this channel';
    return entries.map((e) => (e.startsWith('S') ? `<!subteam^${e}>` : `<@${e}>`)).join(', ');
  }

  private async groupMembers(groupId: string): Promise<Set<string>> {
    const cached = this.groups.get(groupId);
    if (cached && Date.now() - cached.at < this.groupTtlMs) return cached.users;
    const res = await this.client.usergroups.users.list({ usergroup: groupId });
    const users = new Set(res.users ?? []);
    this.groups.set(groupId, { users, at: Date.now() });
    return users;
  }
}
