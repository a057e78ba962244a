import type { Redis } from 'ioredis';
import {
  type ChannelContext,
  type ChannelInstructions,
  ChannelInstructionsSchema,
  type ChannelKey,
  ErrorCodes,
  HandoffError,
  type MemoryFact,
  MemoryFactSchema,
  type MemoryProposal,
  MemoryProposalSchema,
  maxFactsPerChannel,
} from '../core/index.ts';

const prefix = 'hf:';
const k = {
  instructions: (c: ChannelKey) => `${prefix}channel:${c.surface}:${c.channel}:instructions`,
  memory: (c: ChannelKey) => `${prefix}channel:${c.surface}:${c.channel}:memory`,
  proposal: (id: string) => `${prefix}memory:proposal:${id}`,
  taskProposals: (taskId: string) => `${prefix}memory:proposals:${taskId}`,
  channelProposals: (c: ChannelKey) => `${prefix}channel:${c.surface}:${c.channel}:proposals`,
};

/**
 * Adds a fact unless the channel's memory is full. KEYS[1] memory hash; ARGV: id, JSON, cap.
 * Returns 1 when added, 0 when full.
 */
const addCapped = `
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

/**
 * Channel settings in Redis: standing instructions and a memory of facts per channel
 * (surface + channel id), and facts proposed for an approver's Accept or Dismiss. Texts
 * MUST be redacted before they reach this store (`cleanSettingText`); it validates shape
 * and size only. Instructions and memory are standing settings and never expire; a
 * proposal lives as long as task records do (the retention) and is taken once.
 */
export class ChannelSettingsStore {
  constructor(
    private readonly redis: Redis,
    private readonly options: { retentionMs: number },
  ) {}

  async instructions(channel: ChannelKey): Promise<ChannelInstructions | undefined> {
    const raw = await this.redis.get(k.instructions(channel));
    return raw ? ChannelInstructionsSchema.parse(JSON.parse(raw)) : undefined;
  }

  async setInstructions(channel: ChannelKey, instructions: ChannelInstructions): Promise<void> {
    await this.redis.set(k.instructions(channel), JSON.stringify(ChannelInstructionsSchema.parse(instructions)));
  }

  /** True when there were instructions to clear. */
  async clearInstructions(channel: ChannelKey): Promise<boolean> {
    return (await this.redis.del(k.instructions(channel))) > 0;
  }

  /** The channel's facts, oldest first. */
  async memory(channel: ChannelKey): Promise<MemoryFact[]> {
    const all = await this.redis.hvals(k.memory(channel));
    return all.map((raw) => MemoryFactSchema.parse(JSON.parse(raw))).sort((a, b) => a.at.localeCompare(b.at));
  }

  /** Stores a fact; throws a HandoffError fit to show when the memory is full. */
  async addFact(channel: ChannelKey, fact: MemoryFact): Promise<void> {
    const f = MemoryFactSchema.parse(fact);
    const added = await this.redis.eval(addCapped, 1, k.memory(channel), f.id, JSON.stringify(f), maxFactsPerChannel);
    if (added !== 1)
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `this channel's memory is full (${maxFactsPerChannel} facts): forget one before adding another`,
      );
  }

  /** The removed fact, or undefined when the channel has no fact with that id. */
  async removeFact(channel: ChannelKey, id: string): Promise<MemoryFact | undefined> {
    const key = k.memory(channel);
    const raw = await this.redis.hget(key, id);
    if (!raw) return undefined;
    return (await this.redis.hdel(key, id)) > 0 ? MemoryFactSchema.parse(JSON.parse(raw)) : undefined;
  }

  async propose(proposal: MemoryProposal): Promise<void> {
    const p = MemoryProposalSchema.parse(proposal);
    const ttl = this.options.retentionMs;
    const multi = this.redis.multi().set(k.proposal(p.id), JSON.stringify(p), 'PX', ttl, 'NX');
    if (p.taskId) multi.rpush(k.taskProposals(p.taskId), p.id).pexpire(k.taskProposals(p.taskId), ttl);
    multi.rpush(k.channelProposals(p.channel), p.id).pexpire(k.channelProposals(p.channel), ttl);
    await multi.exec();
  }

  /** The channel's proposals still waiting for an approver, oldest first (expired and decided ones dropped). */
  async openProposals(channel: ChannelKey): Promise<MemoryProposal[]> {
    const key = k.channelProposals(channel);
    const ids = await this.redis.lrange(key, 0, -1);
    const open: MemoryProposal[] = [];
    for (const id of ids) {
      const p = await this.proposal(id);
      if (p) open.push(p);
      else await this.redis.lrem(key, 0, id);
    }
    return open;
  }

  async proposal(id: string): Promise<MemoryProposal | undefined> {
    const raw = await this.redis.get(k.proposal(id));
    return raw ? MemoryProposalSchema.parse(JSON.parse(raw)) : undefined;
  }

  /** Takes a proposal once (Accept or Dismiss): the first click wins, a second finds nothing. */
  async takeProposal(id: string): Promise<MemoryProposal | undefined> {
    const raw = await this.redis.getdel(k.proposal(id));
    return raw ? MemoryProposalSchema.parse(JSON.parse(raw)) : undefined;
  }

  /** Ids of every proposal a task made, open or decided, in order. */
  async proposalIdsOf(taskId: string): Promise<string[]> {
    return this.redis.lrange(k.taskProposals(taskId), 0, -1);
  }

  /** What a plan and its run are told about the channel (`policyInstructions` come from the policy file). */
  async context(channel: ChannelKey, policyInstructions?: string): Promise<ChannelContext> {
    const [instructions, memory] = await Promise.all([this.instructions(channel), this.memory(channel)]);
    return {
      ...(policyInstructions ? { policyInstructions } : {}),
      ...(instructions ? { instructions: instructions.text } : {}),
      memory: memory.map((f) => ({ id: f.id, text: f.text })),
    };
  }
}
