import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const policyYaml = `version: 1
defaults:
  requesterMayApprove: false
  budget:
    monthlyCostCapUsd: 0.01
  redaction:
    enabled: true
    kinds: [email, secret]
channels:
  "web:general":
    approvers:
      users: ["web:bo", "web:cy", "web:ana"]
    quorum: 2
`;

const plan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Write a note.',
        steps: [{ title: 'Write it', actions: ['run_commands', 'create_files'] }],
        deliverables: [{ name: 'note.md', type: 'md' }],
      },
    },
  ],
  // Priced at the default $3 / $15 per million: about $0.02, over the $0.01 monthly cap.
  usage: { input_tokens: 2000, output_tokens: 1000 },
};

describe('a policy file with mistakes stops the start', () => {
  it('names the file, the key and the reason', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-policy-'));
    const file = join(dir, 'policy.yaml');
    await writeFile(file, 'version: 1\nchannels:\n  "web:general":\n    quorm: 2\n');
    await expect(startDevHandoff({ env: { HANDOFF_POLICY: file } })).rejects.toThrow(
      /policy\.yaml: channels\.web:general\.quorm: unknown key/,
    );
    await rm(dir, { recursive: true, force: true });
  });
});

describeDocker('the policy file governs the console channel', () => {
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-policy-'));
    await writeFile(join(dir, 'policy.yaml'), policyYaml);
    model = await startFakeAnthropic();
    handoff = await startDevHandoff({
      env: {
        HANDOFF_POLICY: join(dir, 'policy.yaml'),
        ANTHROPIC_API_KEY: 'sk-ant-test',
        ANTHROPIC_BASE_URL: model.url,
      },
    });
  });
  afterAll(async () => {
    await handoff?.close();
    await model?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('approvers and quorum from the policy, redaction before the model, and the monthly cap', async () => {
    model.enqueue(
      plan,
      {
        content: [
          { type: 'tool_use', name: 'run_command', input: { command: 'echo hi > /workspace/out/note.md', step: 1 } },
        ],
      },
      { content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/note.md' } }] },
      { content: [{ type: 'text', text: 'Done.' }] },
    );
    const ana = new ConsoleClient(handoff.url, 'Ana');
    const bo = new ConsoleClient(handoff.url, 'Bo');
    const cy = new ConsoleClient(handoff.url, 'Cy');
    const dan = new ConsoleClient(handoff.url, 'Dan');
    const posted = await ana.post(
      '@handoff write a note for ana@example.com using token sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789',
    );
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'));
    const buttons = planButtons(card.html!);

    // What reached the model had the address and the key taken out.
    const first = JSON.stringify(model.requests[0]!.body);
    expect(first).not.toContain('ana@example.com');
    expect(first).not.toContain('sk-ant-api03-abcdef');
    expect(first).toContain('[redacted:email]');

    expect((await ana.action({ action: 'approve', ...buttons })).body.error).toContain('your own request');
    expect((await dan.action({ action: 'approve', ...buttons })).status).toBe(403);
    const one = await bo.action({ action: 'approve', ...buttons });
    expect(one.body.message).toContain('1 more approver');
    expect((await bo.action({ action: 'approve', ...buttons })).body.error).toContain('already approved');
    expect((await cy.action({ action: 'approve', ...buttons })).status).toBe(200);
    await ana.waitForCard(thread, (h) => h.includes('card result'), 120_000);

    // The run's cost went over the channel's monthly cap: the next request is refused with the numbers.
    const refused = await ana.post('@handoff another note');
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatch(/used \$0\.0\d of its \$0\.01 monthly budget/);

    const redis = new Redis(handoff.redisUrl);
    const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r));
    redis.disconnect();
    expect(audit.find((r) => r.type === 'policy.loaded')?.data.source).toContain('policy.yaml');
    const planned = audit.find((r) => r.type === 'plan.created' && r.taskId === buttons.taskId);
    expect(planned.data.redactions).toEqual({ email: 1, secret: 1 });
    expect(audit.filter((r) => r.taskId === buttons.taskId).map((r) => r.type)).toEqual(
      expect.arrayContaining(['plan.vote', 'plan.approved']),
    );
  }, 180_000);
});
