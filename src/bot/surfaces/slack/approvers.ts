import type { webApi } from '@slack/bolt';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';

/**
 * `SLACK_APPROVERS`: who may approve plans, per Slack channel id: user ids (`U…`/`W…`)
 * and user groups (`S…`). The key `*` applies to channels that are not listed. It is
 * consulted only for channels whose policy names no approvers (see `slackApproversFor`).
 */
export type SlackApproverMap = Readonly<Record<string, readonly string[]>>;

export interface ApproverIds {
  users: string[];
  groups: string[];
}

/**
 * The `SLACK_APPROVERS` entries for a channel (or `*`), split into users and user
 * groups; undefined when the map has no entry, i.e. anyone in the channel may approve.
 */
export function slackApproversFor(map: SlackApproverMap, channel: string): ApproverIds | undefined {
  const entries = map[channel] ?? map['*'];
  if (!entries) return undefined;
  return {
    users: entries.filter((e) => !e.startsWith('S')),
    groups: entries.filter((e) => e.startsWith('S')),
  };
}

/**
 * "<@U1>, <!subteam^S1>": who to ask, as Slack mentions. Ids that are not Slack ids
 * (a policy file may list anything) are named as written.
 */
export function mentionApprovers(approvers: { users: readonly string[]; groups: readonly string[] }): string {
  const names = [
    ...approvers.users.map((u) => (/^[UW][A-Z0-9]+$/.test(u) ? `<@${u}>` : u)),
    ...approvers.groups.map((g) => (/^S[A-Z0-9]+$/.test(g) ? `<!subteam^${g}>` : g)),
  ];
  return names.length > 0 ? names.join(', ') : 'someone else in this channel';
}

/**
 * Slack user-group membership, looked up with `usergroups.users.list` and cached for
 * a few minutes per group (so a click costs no API call most of the time, and someone
 * removed from a group loses approval within the TTL).
 */
export class SlackUserGroups {
  private readonly groups = new Map<string, { users: Set<string>; at: number }>();

  constructor(
    private readonly client: webApi.WebClient,
    private readonly groupTtlMs = 5 * 60_000,
  ) {}

  /**
   * Whether `userId` belongs to one of `groupIds`. Throws a retryable HandoffError when
   * Slack cannot be asked: a failed lookup refuses the click, it never approves.
   */
  async includes(userId: string, groupIds: readonly string[]): Promise<boolean> {
    for (const id of groupIds) {
      if ((await this.members(id)).has(userId)) return true;
    }
    return false;
  }

  private async members(groupId: string): Promise<Set<string>> {
    const cached = this.groups.get(groupId);
    if (cached && Date.now() - cached.at < this.groupTtlMs) return cached.users;
    let users: Set<string>;
    try {
      const res = await this.client.usergroups.users.list({ usergroup: groupId });
      users = new Set(res.users ?? []);
    } catch (err) {
      throw new HandoffError(
        ErrorCodes.approverLookupFailed,
        `could not look up the members of user group ${groupId}; try again in a moment`,
        { cause: err, retryable: true },
      );
    }
    this.groups.set(groupId, { users, at: Date.now() });
    return users;
  }
}
