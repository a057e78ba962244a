import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type FakeAnthropicServer,
  type MessagesRequestBody,
  type RecordedRequest,
  startFakeAnthropic,
} from '../fakes/anthropic-server.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

// Console people are `web:<name>`; Ben approves in #general, Ana asks, Dan is nobody special.
const policyYaml = `version: 1
channels:
  "web:general":
    approvers:
      users: ["web:ben"]
    instructions: "Amounts are in EUR unless a file says otherwise."
`;

const card = '4111 1111 1111 1111';

/** The first user message's text of a recorded request (where the channel's settings go). */
function firstMessage(r: RecordedRequest): string {
  const first = (r.body.messages as Array<{ content: unknown }> | undefined)?.[0]?.content;
  return typeof first === 'string' ? first : JSON.stringify(first);
}

const isPlanning = (body: MessagesRequestBody) =>
  ((body.tools as Array<{ name: string }> | undefined) ?? []).some((t) => t.name === 'submit_plan');

describeDocker('channel instructions and memory in the console (fake Messages API through the SDK)', () => {
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let redis: Redis;
  let policyDir: string;
  const ana = () => new ConsoleClient(handoff.url, 'Ana');
  const ben = () => new ConsoleClient(handoff.url, 'Ben');
  const dan = () => new ConsoleClient(handoff.url, 'Dan');

  async function change(who: ConsoleClient, body: Record<string, unknown>) {
    const res = await fetch(`${handoff.url}/api/console/channel-settings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(handoff.url).origin },
      body: JSON.stringify({ channel: 'general', author: who.author, ...body }),
    });
    return { status: res.status, body: (await res.json()) as { ok?: boolean; message?: string; error?: string } };
  }

  async function settings(who: ConsoleClient) {
    const res = await fetch(
      `${handoff.url}/api/console/channel-settings?channel=general&author=${encodeURIComponent(who.author)}`,
    );
    expect(res.status).toBe(200);
    return (await res.json()) as {
      settings: {
        instructions?: { text: string; by: string };
        policyInstructions?: string;
        memory: Array<{ id: string; text: string; source: string }>;
        proposals: Array<{ id: string; text: string; proposedBy: string }>;
        canEdit: boolean;
      };
      html: string;
    };
  }

  const audit = async () =>
    (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r) as { type: string; data?: unknown });

  beforeAll(async () => {
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-chset-'));
    await writeFile(join(policyDir, 'policy.yaml'), policyYaml);
    model = await startFakeAnthropic({ apiKey: 'sk-ant-test-key' });
    handoff = await startDevHandoff({
      env: {
        ANTHROPIC_API_KEY: 'sk-ant-test-key',
        ANTHROPIC_BASE_URL: model.url,
        HANDOFF_POLICY: join(policyDir, 'policy.yaml'),
      },
    });
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await model?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it('refuses a non-approver clearly, and redacts a card number before storing a fact', async () => {
    const refused = await change(dan(), { op: 'set_instructions', text: 'Answer in Klingon.' });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatch(/only this channel's approvers can set its instructions; ask web:ben/);

    const set = await change(ben(), {
      op: 'set_instructions',
      text: 'Our fiscal year starts in April. Answer in German.',
    });
    expect(set.status).toBe(200);
    expect(set.body.message).toMatch(/Instructions set for this channel/);

    // "remember that …" from an approver: stored at once, acknowledged, and no task made.
    const tasksBefore = (await redis.keys('hf:task:*')).length;
    const remembered = await ben().post(`@handoff remember that the EMEA target is 2.1 M; the test card is ${card}`);
    expect(remembered.status).toBe(201);
    expect(remembered.body.taskId).toBeUndefined();
    expect((await redis.keys('hf:task:*')).length).toBe(tasksBefore);
    const thread = remembered.body.message!.id;
    const ack = await ben().waitForCard(thread, (h) => h.includes('Remembered for this channel'), 10_000);
    expect(ack.html).toContain('1 card number');

    // Stored redacted: the number is in no record of the memory, its proposals or the audit trail
    // (the person's own chat message stays as they wrote it, as in any chat).
    const stored = await redis.hvals('hf:channel:web:general:memory');
    expect(stored).toHaveLength(1);
    expect(stored[0]).toContain('[redacted:card]');
    const keys = [...(await redis.keys('hf:channel:*')), ...(await redis.keys('hf:memory:*')), 'hf:audit'];
    for (const key of keys) {
      const type = await redis.type(key);
      const values =
        type === 'string'
          ? [await redis.get(key)]
          : type === 'hash'
            ? await redis.hvals(key)
            : type === 'list'
              ? await redis.lrange(key, 0, -1)
              : [];
      for (const v of values) expect(v ?? '').not.toContain('4111 1111');
    }

    // Dan may not forget it; the refusal names who to ask.
    const { settings: seen } = await settings(dan());
    expect(seen.canEdit).toBe(false);
    const forget = await change(dan(), { op: 'forget', factId: seen.memory[0]!.id });
    expect(forget.status).toBe(403);
    expect(forget.body.error).toMatch(/only this channel's approvers can forget/);

    // Dan's "remember that …" is a proposal, which Ben accepts from the settings.
    const proposed = await dan().post('@handoff remember that the APAC target is 1.5 M');
    expect(proposed.status).toBe(201);
    await dan().waitForCard(proposed.body.message!.id, (h) => h.includes('waits for one of them'), 10_000);
    const { settings: forBen, html } = await settings(ben());
    expect(forBen.canEdit).toBe(true);
    expect(forBen.proposals.map((p) => p.text)).toEqual(['the APAC target is 1.5 M']);
    expect(html).toContain('data-op="accept"');
    const accepted = await change(ben(), { op: 'accept', proposalId: forBen.proposals[0]!.id });
    expect(accepted.body.message).toMatch(/Remembered for this channel/);
    const again = await change(ben(), { op: 'accept', proposalId: forBen.proposals[0]!.id });
    expect(again.status).toBe(409);

    // Audited with ids and lengths, never the texts.
    const records = await audit();
    const types = records.map((r) => r.type);
    expect(types).toEqual(
      expect.arrayContaining(['channel.instructions_set', 'channel.memory_added', 'channel.memory_proposed']),
    );
    const chset = JSON.stringify(records.filter((r) => r.type.startsWith('channel.')));
    expect(chset).not.toContain('EMEA');
    expect(chset).not.toContain('German');
    expect(chset).not.toContain('APAC');
  });

  it('sends instructions and memory with the plan and the run; a fact the agent proposes is accepted from the result card and reaches the next task', async () => {
    model.setHandler((body) => {
      if (isPlanning(body))
        return {
          content: [
            {
              type: 'tool_use',
              name: 'submit_plan',
              input: {
                summary: 'Write a short note.',
                steps: [{ title: 'Write the note', actions: ['run_commands', 'create_files'] }],
                deliverables: [{ name: 'note.md', type: 'md' }],
              },
            },
          ],
        };
      const uses = (body.messages as Array<{ content: unknown }>).flatMap((m) =>
        Array.isArray(m.content) ? (m.content as Array<{ type: string; name?: string }>) : [],
      );
      const last = uses.filter((b) => b.type === 'tool_use').at(-1)?.name;
      if (last === undefined)
        return {
          content: [
            { type: 'tool_use', name: 'propose_memory', input: { fact: 'The board meets on the first Friday' } },
          ],
        };
      if (last === 'propose_memory')
        return {
          content: [
            {
              type: 'tool_use',
              name: 'run_command',
              input: { command: 'echo "# Note" > /workspace/out/note.md', step: 1 },
            },
          ],
        };
      if (last === 'run_command')
        return { content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/note.md' } }] };
      return { content: [{ type: 'text', text: 'Wrote note.md.' }] };
    });

    const posted = await ana().post('@handoff write a short note for the team');
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const plan = await ana().waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const planning = model.messageRequests.filter((r) => isPlanning(r.body)).at(-1)!;
    const planText = firstMessage(planning);
    expect(planText).toContain('Amounts are in EUR unless a file says otherwise.');
    expect(planText).toContain('Our fiscal year starts in April. Answer in German.');
    expect(planText).toContain('the EMEA target is 2.1 M');
    expect(planText).toContain('the APAC target is 1.5 M');
    expect(planText).toContain('[redacted:card]');
    expect(planText).not.toContain('4111');
    // Before the request, and outside the byte-stable system prompt.
    expect(planText.indexOf('<channel_instructions>')).toBeLessThan(planText.indexOf('<request>'));
    expect(JSON.stringify(planning.body.system)).not.toContain('fiscal year');

    await ben().action({ action: 'approve', ...planButtons(plan.html!) });
    const result = await ana().waitForCard(thread, (h) => h.includes('card result'), 120_000);
    const runFirst = model.messageRequests.filter((r) => !isPlanning(r.body)).map(firstMessage);
    expect(runFirst.length).toBeGreaterThan(0);
    for (const text of runFirst) {
      expect(text).toContain('Our fiscal year starts in April. Answer in German.');
      expect(text).toContain('the APAC target is 1.5 M');
    }

    // The agent's proposal waits on the result card; Dan may not accept it, Ben may.
    expect(result.html).toContain('The board meets on the first Friday');
    const proposalId = /data-action="accept-memory" data-task="[^"]+" data-approval="([^"]+)"/.exec(result.html!)?.[1];
    expect(proposalId).toBeDefined();
    const byDan = await dan().action({ action: 'accept-memory', approvalId: proposalId });
    expect(byDan.status).toBe(403);
    const byBen = await ben().action({ action: 'accept-memory', approvalId: proposalId });
    expect(byBen.status).toBe(200);
    await ana().waitForCard(thread, (h) => h.includes('card result') && !h.includes('accept-memory'), 10_000);

    // The next task's planner is told the accepted fact.
    const before = model.messageRequests.length;
    const next = await ana().post('@handoff write another note');
    await ana().waitForCard(next.body.message!.id, (h) => h.includes('card plan'), 60_000);
    const nextPlanning = model.messageRequests.slice(before).find((r) => isPlanning(r.body))!;
    expect(firstMessage(nextPlanning)).toContain('The board meets on the first Friday');
    // The card number stored redacted never reached the model, in planning or in the run.
    for (const r of model.messageRequests) expect(r.rawBody).not.toMatch(/4111 ?1111/);
  });
});
