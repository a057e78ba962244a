import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaultPlanPolicy } from '../../src/approvals/index.ts';
import { ChannelSettings, maxOpenProposals } from '../../src/bot/channel-settings.ts';
import { maxFactsPerChannel, newTask, type Plan, type Task } from '../../src/core/index.ts';
import { memoryProposalTools, runChannelContext } from '../../src/runner/channel-settings.ts';
import { AuditLog, ChannelSettingsStore, type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';

let server: EmbeddedRedis;
let redis: Redis;
let dir: string;
let store: ChannelSettingsStore;
const ben = { id: 'UBEN', name: 'Ben' };
const c1 = { surface: 'slack' as const, channel: 'C1' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-chset-store-'));
  server = await startRedisServer({ dir });
  redis = new Redis(server.url);
  store = new ChannelSettingsStore(redis, { retentionMs: 60_000 });
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('caps a channel memory, and keeps channels apart', async () => {
  const at = new Date().toISOString();
  for (let i = 0; i < maxFactsPerChannel; i++)
    await store.addFact(c1, { id: `mem_${i}`, text: `fact ${i}`, by: ben, at, source: 'asked' });
  await expect(store.addFact(c1, { id: 'mem_x', text: 'one more', by: ben, at, source: 'asked' })).rejects.toThrow(
    /memory is full \(50 facts\): forget one/,
  );
  expect(await store.memory({ surface: 'slack', channel: 'C2' })).toEqual([]);
  expect(await store.removeFact(c1, 'mem_3')).toMatchObject({ text: 'fact 3' });
  expect(await store.removeFact(c1, 'mem_3')).toBeUndefined();
  await store.addFact(c1, { id: 'mem_x', text: 'one more', by: ben, at, source: 'asked' });
  expect((await store.memory(c1)).length).toBe(maxFactsPerChannel);
});

it('takes a proposal once, and drops it from the open list', async () => {
  const p = {
    id: 'mp_1',
    channel: c1,
    text: 'the board meets on Fridays',
    taskId: 't_1',
    at: new Date().toISOString(),
  };
  await store.propose(p);
  expect((await store.openProposals(c1)).map((x) => x.id)).toEqual(['mp_1']);
  expect(await store.proposalIdsOf('t_1')).toEqual(['mp_1']);
  expect(await store.takeProposal('mp_1')).toMatchObject({ text: 'the board meets on Fridays' });
  expect(await store.takeProposal('mp_1')).toBeUndefined();
  expect(await store.openProposals(c1)).toEqual([]);
  // A proposal lives as long as task records do.
  await store.propose({ ...p, id: 'mp_2' });
  expect(await redis.pttl('hf:memory:proposal:mp_2')).toBeGreaterThan(0);
});

it("a task's run gets its plan's snapshot; a scheduled brief's run gets the channel's settings as they are now", async () => {
  const c3 = { surface: 'slack' as const, channel: 'C3' };
  await store.setInstructions(c3, { text: 'New: answer in German.', by: ben, at: new Date().toISOString() });
  const base: Task = newTask(
    {
      id: 't_9',
      conversation: { ...c3, thread: '1.1' },
      requester: ben,
      request: 'brief',
      inputs: [],
      demo: false,
    },
    new Date(),
  );
  const plan = { channelContext: { instructions: 'Old: answer in English.', memory: [] } } as unknown as Plan;
  expect(await runChannelContext(store, base, plan, undefined)).toEqual(plan.channelContext);
  const now = new Date().toISOString();
  const brief: Task = { ...base, brief: { scheduleId: 's_1', scheduledAt: now, startedAt: now, manual: false } };
  expect(await runChannelContext(store, brief, plan, 'Policy text.')).toEqual({
    policyInstructions: 'Policy text.',
    instructions: 'New: answer in German.',
    memory: [],
  });
});

it("caps open proposals from people per channel, and the agent's per task", async () => {
  const c4 = { surface: 'slack' as const, channel: 'C4' };
  const audit = new AuditLog(redis);
  const settings = new ChannelSettings({
    store,
    audit,
    policyFor: () => defaultPlanPolicy(false),
    // Only Ben approves in this channel.
    isApprover: async (_c, who) => who.id === 'UBEN',
    approversText: () => 'Ben',
    demo: false,
  });
  const dan = { id: 'UDAN', name: 'Dan' };
  for (let i = 0; i < maxOpenProposals; i++)
    expect((await settings.remember(c4, dan, `fact number ${i}`)).status).toBe('proposed');
  await expect(settings.remember(c4, dan, 'one too many')).rejects.toThrow(
    /20 proposed facts already wait for this channel's approvers; ask one of them \(Ben\)/,
  );
  // An approver's own fact is stored whatever waits.
  expect((await settings.remember(c4, ben, 'stored at once')).status).toBe('stored');

  const task = newTask(
    { id: 't_cap', conversation: { ...c4, thread: '2.2' }, requester: ben, request: 'x', inputs: [], demo: false },
    new Date(),
  );
  const tools = memoryProposalTools({ store, audit, task, runId: 'r_1', redactionKinds: [] });
  const signal = new AbortController().signal;
  for (let i = 0; i < 5; i++)
    expect((await tools.run('propose_memory', { fact: `agent fact ${i}` }, signal)).isError).toBe(false);
  const sixth = await tools.run('propose_memory', { fact: 'agent fact 6' }, signal);
  expect(sixth).toEqual({ content: expect.stringMatching(/at most 5 proposals per task/), isError: true });
  expect((await tools.run('propose_memory', { fact: '' }, signal)).isError).toBe(true);
  expect(await settings.openProposals('t_cap')).toHaveLength(5);
});
