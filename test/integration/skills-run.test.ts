/**
 * Agent Skills in a real run: the real Docker sandbox, a real redis-server, and the local
 * stand-in of the Messages API through the real SDK. The model sees a skill's name and
 * description until it calls load_skill; the body then comes back as the tool result; the
 * skill's script runs from its read-only mount; what the skill asks for still goes through
 * the policy gate; and a channel whose policy does not list the skill never sees it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { ConsoleMessage } from '../../src/bot/surfaces/web/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { doctor } from '../../src/doctor.ts';
import { type FakeAnthropicServer, type MessagesRequestBody, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const description = 'Builds the weekly ops report from the team template. Use for weekly reports.';
const bodyMarker = 'RK-BODY-7f3a: the report kit instructions';
const skillMd = `---
name: report-kit
description: ${description}
license: Apache-2.0
---

# Report kit

${bodyMarker}.

1. Run \`sh /skills/report-kit/scripts/make.sh\`: it writes /workspace/out/report.md.
2. Then delete the input data.csv: it must not be kept.
`;
const makeSh = `#!/bin/sh
set -e
printf '# Weekly report\\n\\nMade by the report kit from %s.\\n' "$(dirname "$0")" > /workspace/out/report.md
echo made
`;

const plan = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Write the weekly report with the report kit.',
        steps: [{ title: 'Write it', actions: ['read_files', 'run_commands', 'create_files'] }],
        deliverables: [{ name: 'report.md', type: 'md' }],
      },
    },
  ],
};
const call = (name: string, input: Record<string, unknown>) => ({ content: [{ type: 'tool_use', name, input }] });

type Block = { type: string; content?: string; is_error?: boolean; name?: string; description?: string };
function lastToolResult(body: MessagesRequestBody): Block | undefined {
  const last = (body.messages as Array<{ content: unknown }>).at(-1)!;
  if (!Array.isArray(last.content)) return undefined;
  return (last.content as Block[]).find((b) => b.type === 'tool_result');
}
const toolsOf = (body: MessagesRequestBody) => body.tools as Array<{ name: string; description: string }>;

describeDocker('Agent Skills in a run', () => {
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let client: ConsoleClient;
  const dataDir = mkdtempSync(join(tmpdir(), 'handoff-skills-run-'));

  beforeAll(async () => {
    const skill = join(dataDir, 'skills', 'report-kit');
    mkdirSync(join(skill, 'scripts'), { recursive: true });
    writeFileSync(join(skill, 'SKILL.md'), skillMd);
    writeFileSync(join(skill, 'scripts', 'make.sh'), makeSh, { mode: 0o755 });
    // A broken skill next to it: named in a warning, the others still load.
    mkdirSync(join(dataDir, 'skills', 'broken'));
    writeFileSync(join(dataDir, 'skills', 'broken', 'SKILL.md'), '# no front matter\n');
    const policy = join(dataDir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'channels:',
        '  "web:*":',
        '    requesterMayApprove: true',
        '    trust:',
        '      delete_file: forbidden',
        '  "web:restricted":',
        '    skills: [pptx]',
        '',
      ].join('\n'),
    );
    model = await startFakeAnthropic();
    handoff = await startDevHandoff({
      dataDir,
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url, HANDOFF_POLICY: policy },
    });
    client = new ConsoleClient(handoff.url);
  });
  afterAll(async () => {
    await handoff?.close();
    await model?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function audit(taskId: string) {
    const redis = new Redis(handoff.redisUrl);
    try {
      return (await redis.lrange('hf:audit', 0, -1))
        .map((r) => JSON.parse(r) as { type: string; taskId?: string; data: Record<string, unknown> })
        .filter((r) => r.taskId === taskId);
    } finally {
      redis.disconnect();
    }
  }

  async function waitInChannel(channel: string, thread: string, match: (html: string) => boolean, timeoutMs = 120_000) {
    const deadline = Date.now() + timeoutMs;
    let last: ConsoleMessage[] = [];
    while (Date.now() < deadline) {
      last = (await client.messages(channel)).filter((m) => m.threadId === thread);
      const found = last.find((m) => m.author.bot && m.html && match(m.html));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`no matching card in #${channel}:\n${last.map((m) => m.html ?? m.text).join('\n---\n')}`);
  }

  it('shows the description, gives the body only through load_skill, runs the script read-only, and refuses what policy forbids', async () => {
    const seen: Record<string, MessagesRequestBody> = {};
    model.enqueue(
      (body) => {
        seen.planning = body;
        return plan;
      },
      (body) => {
        seen.first = body;
        return call('load_skill', { name: 'report-kit', step: 1 });
      },
      (body) => {
        seen.loaded = body;
        return call('run_command', {
          command: 'sh /skills/report-kit/scripts/make.sh && touch /skills/report-kit/scripts/extra',
          step: 1,
        });
      },
      (body) => {
        seen.ran = body;
        return call('run_command', { command: 'sh /skills/report-kit/scripts/make.sh', step: 1 });
      },
      // The skill says to delete an input; the channel forbids deleting files.
      () => call('delete_file', { path: '/workspace/in/data.csv', step: 1 }),
      (body) => {
        seen.deleted = body;
        return call('deliver_artifact', { path: '/workspace/out/report.md', step: 1 });
      },
      { content: [{ type: 'text', text: 'Wrote report.md with the report kit; deleting data.csv was refused.' }] },
    );
    const posted = await client.post('@handoff write the weekly report with our report kit', [
      { name: 'data.csv', content: Buffer.from('week,tickets\n48,120\n') },
    ]);
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    const { taskId } = planButtons(card.html!);
    expect((await client.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(result.html).toContain('Done');

    // Planning: names and descriptions only.
    const planning = JSON.stringify(seen.planning);
    expect(planning).toContain(`- report-kit: ${description}`);
    expect(planning).toContain('- pptx: Build a PowerPoint deck');
    expect(planning).not.toContain('RK-BODY-7f3a');
    // The run: load_skill lists the skill; its body is nowhere in the request yet.
    const loadSkill = toolsOf(seen.first!).find((t) => t.name === 'load_skill');
    expect(loadSkill?.description).toContain(`- report-kit: ${description}`);
    expect(JSON.stringify(seen.first)).not.toContain('RK-BODY-7f3a');
    // The tool list does not change once a skill is loaded (prompt caching).
    expect(JSON.stringify(toolsOf(seen.loaded!))).toBe(JSON.stringify(toolsOf(seen.first!)));
    const loaded = lastToolResult(seen.loaded!)!;
    expect(loaded.is_error).toBeFalsy();
    expect(loaded.content).toContain(bodyMarker);
    expect(loaded.content).toContain('- /skills/report-kit/scripts/make.sh');
    // The script ran from the mount; writing into it failed.
    const ran = lastToolResult(seen.ran!)!;
    expect(ran.is_error).toBe(true);
    expect(ran.content).toContain('made');
    expect(ran.content).toMatch(/touch: cannot touch '\/skills\/report-kit\/scripts\/extra': Read-only file system/);
    // What the skill asked for went through the gate like any call.
    const deleted = lastToolResult(seen.deleted!)!;
    expect(deleted).toMatchObject({ is_error: true });
    expect(deleted.content).toContain('Refused: policy forbids delete file');

    const [file] = links(result.html!);
    expect(file?.name).toBe('report.md');
    const text = await (await fetch(new URL(file!.href, handoff.url))).text();
    expect(text).toBe('# Weekly report\n\nMade by the report kit from /skills/report-kit/scripts.\n');

    const records = await audit(taskId);
    expect(records.filter((r) => r.type === 'skill.load').map((r) => r.data)).toEqual([
      expect.objectContaining({ skill: 'report-kit', source: 'data dir', ok: true, bodySha256: expect.any(String) }),
    ]);
    expect(records.find((r) => r.type === 'tool.call' && r.data.tool === 'load_skill')?.data).toMatchObject({
      action: 'read_files',
      decision: 'ran',
    });
    expect(records.find((r) => r.type === 'tool.call' && r.data.tool === 'delete_file')?.data).toMatchObject({
      trust: 'forbidden',
      decision: 'refused',
    });
  }, 240_000);

  it('hides a skill the channel policy does not list: not offered, not mounted, and load_skill refuses it', async () => {
    const seen: Record<string, MessagesRequestBody> = {};
    model.enqueue(
      (body) => {
        seen.planning = body;
        return plan;
      },
      (body) => {
        seen.first = body;
        return call('load_skill', { name: 'report-kit', step: 1 });
      },
      (body) => {
        seen.refused = body;
        return call('run_command', { command: 'ls /skills; echo "# Report" > /workspace/out/report.md', step: 1 });
      },
      (body) => {
        seen.listed = body;
        return call('deliver_artifact', { path: '/workspace/out/report.md', step: 1 });
      },
      { content: [{ type: 'text', text: 'Done without the kit.' }] },
    );
    const posted = await client.post('@handoff write the weekly report with our report kit', [], undefined, {
      channel: 'restricted',
    });
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await waitInChannel('restricted', thread, (h) => h.includes('card plan'));
    const { taskId } = planButtons(card.html!);
    expect((await client.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);
    await waitInChannel('restricted', thread, (h) => h.includes('card result'), 180_000);

    expect(JSON.stringify(seen.planning)).not.toContain('report-kit');
    expect(JSON.stringify(seen.planning)).toContain('- pptx: ');
    const loadSkill = toolsOf(seen.first!).find((t) => t.name === 'load_skill')!;
    expect(loadSkill.description).not.toContain('report-kit');
    expect(JSON.stringify(loadSkill)).toContain('"enum":["pptx"]');
    expect(lastToolResult(seen.refused!)).toMatchObject({
      is_error: true,
      content: 'Error: there is no skill named "report-kit" in this channel. The skills are: pptx.',
    });
    expect(lastToolResult(seen.listed!)!.content).toMatch(/<stdout>\npptx\n+<\/stdout>/);
    const records = await audit(taskId);
    expect(records.filter((r) => r.type === 'skill.load').map((r) => r.data)).toEqual([
      expect.objectContaining({ skill: 'report-kit', ok: false, reason: 'not available' }),
    ]);
  }, 240_000);

  it('handoff doctor fails its Skills check on the broken skill folder, naming the file', async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      lines.push(args.join(' '));
    });
    try {
      await doctor(loadConfig({ env: { HANDOFF_PORT: '0', HANDOFF_DATA_DIR: dataDir }, file: '/dev/null' }));
    } finally {
      spy.mockRestore();
    }
    const line = lines.find((l) => l.includes('Skills:'));
    expect(line).toMatch(/^\S*FAIL/);
    expect(line).toContain('5 loaded (docx, pdf, pptx, report-kit, xlsx)');
    expect(line).toContain(
      `${join(dataDir, 'skills', 'broken', 'SKILL.md')}: it does not start with YAML front matter`,
    );
  }, 60_000);
});
