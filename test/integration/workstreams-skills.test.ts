/**
 * Agent Skills in workstream child runs: the real Docker sandbox, a real redis-server, and the
 * local stand-in of the Messages API through the real SDK. A plan that fans out gives each
 * child run the skills its parent run has: load_skill in the child's narrowed envelope, the
 * channel's skill folders mounted read-only under /skills in the child's own sandbox, and
 * `skill.load` audit records naming the workstream. The channel's policy holds in the
 * children as in the parent: a skill it does not list is neither offered nor mounted, and a
 * channel with no skills gives the children none.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ConsoleMessage } from '../../src/bot/surfaces/web/index.ts';
import {
  type FakeAnthropicServer,
  type FakeReply,
  type MessagesRequestBody,
  startFakeAnthropic,
} from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const bodyMarker = 'RGK-BODY-41c9: the region kit instructions';
const skillMd = `---
name: region-kit
description: Writes one region's report section. Use for per-region work.
---

# Region kit

${bodyMarker}.

Run \`sh /skills/region-kit/scripts/section.sh <region>\`: it writes /workspace/out/<region>.md.
`;
const sectionSh = `#!/bin/sh
set -e
printf '## %s\\n\\nWritten by the region kit from %s.\\n' "$1" "$(dirname "$0")" > "/workspace/out/$1.md"
echo "section $1"
`;
const regions = ['north', 'south'];

const plan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'One report section per region, each with the region kit, merged into one report.',
        steps: [
          { title: 'Write each region', actions: ['read_files', 'run_commands', 'create_files'] },
          { title: 'Merge', actions: ['read_files', 'run_commands', 'create_files'] },
        ],
        deliverables: [{ name: 'report.md', type: 'md' }],
        workstreams: regions.map((id) => ({
          id,
          title: id[0]!.toUpperCase() + id.slice(1),
          brief: `Write the ${id} section with the region kit and hand back ${id}.md.`,
        })),
        merge: 'Join the sections into report.md.',
        onChildFailure: 'fail',
      },
    },
  ],
};
const call = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input }],
});
const done = (text: string): FakeReply => ({ content: [{ type: 'text', text }] });

type Block = { type: string; content?: string; is_error?: boolean };
function lastToolResult(body: MessagesRequestBody): Block | undefined {
  const last = (body.messages as Array<{ content: unknown }>).at(-1)!;
  if (!Array.isArray(last.content)) return undefined;
  return (last.content as Block[]).find((b) => b.type === 'tool_result');
}
const toolsOf = (body: MessagesRequestBody) => body.tools as Array<{ name: string; description: string }>;
const turnOf = (body: MessagesRequestBody) =>
  (body.messages as Array<{ role: string }>).filter((m) => m.role === 'assistant').length;

/**
 * Answers by who asks: the planner gets the fan-out plan, each workstream (named in its first
 * message) its own script, and the merge step joins the sections. Children run in parallel, so
 * replies are chosen by the request, never by arrival order. Every request is kept.
 */
function fanOutHandler(script: (child: string, turn: number) => FakeReply) {
  const seen = new Map<string, MessagesRequestBody[]>();
  const keep = (who: string, body: MessagesRequestBody) => seen.set(who, [...(seen.get(who) ?? []), body]);
  const handler = (body: MessagesRequestBody): FakeReply => {
    if (toolsOf(body).some((t) => t.name === 'submit_plan')) {
      keep('planner', body);
      return plan;
    }
    const child = /You are workstream \\?"([a-z0-9_-]+)\\?"/.exec(JSON.stringify((body.messages as unknown[])[0]))?.[1];
    const turn = turnOf(body);
    if (child) {
      keep(child, body);
      return script(child, turn);
    }
    keep('merge', body);
    if (turn === 0)
      return call('run_command', {
        command: `cat ${regions.map((r) => `/workspace/in/workstreams/${r}/${r}.md`).join(' ')} > /workspace/out/report.md`,
        step: 2,
      });
    if (turn === 1) return call('deliver_artifact', { path: '/workspace/out/report.md', step: 2 });
    return done('Merged the region sections into report.md.');
  };
  return { seen, handler };
}

describeDocker('Agent Skills in workstream child runs', () => {
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let client: ConsoleClient;
  let redis: Redis;
  const dataDir = mkdtempSync(join(tmpdir(), 'handoff-ws-skills-'));

  beforeAll(async () => {
    const skill = join(dataDir, 'skills', 'region-kit');
    mkdirSync(join(skill, 'scripts'), { recursive: true });
    writeFileSync(join(skill, 'SKILL.md'), skillMd);
    writeFileSync(join(skill, 'scripts', 'section.sh'), sectionSh, { mode: 0o755 });
    const policy = join(dataDir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'channels:',
        '  "web:*":',
        '    requesterMayApprove: true',
        '  "web:regions":',
        '    skills: [region-kit]',
        '  "web:plain":',
        '    skills: []',
        '  "web:careful":',
        '    skills: [region-kit]',
        '    trust:',
        '      read_files: watched',
        '',
      ].join('\n'),
    );
    model = await startFakeAnthropic();
    handoff = await startDevHandoff({
      dataDir,
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url, HANDOFF_POLICY: policy },
    });
    client = new ConsoleClient(handoff.url);
    redis = new Redis(handoff.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await model?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function audit(taskId: string) {
    return (await redis.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r) as { type: string; taskId?: string; data: Record<string, unknown> })
      .filter((r) => r.taskId === taskId);
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

  /** Posts the request in #channel, approves the fan-out plan, and returns the result card. */
  async function runFanOut(channel: string): Promise<{ taskId: string; result: ConsoleMessage }> {
    const posted = await client.post(
      '@handoff write one report section per region with the region kit',
      [],
      undefined,
      {
        channel,
      },
    );
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await waitInChannel(channel, thread, (h) => h.includes('card plan'));
    expect(card.html).toContain('Runs as 2 parallel workstreams, each in its own sandbox');
    const buttons = planButtons(card.html!);
    expect((await client.action({ action: 'approve', ...buttons })).status).toBe(200);
    const result = await waitInChannel(channel, thread, (h) => h.includes('card result'), 240_000);
    return { taskId: buttons.taskId, result };
  }

  it("gives each child run the parent's skills: load_skill, the read-only mount, and audited loads naming the workstream", async () => {
    const { seen, handler } = fanOutHandler((child, turn) => {
      if (turn === 0) return call('load_skill', { name: 'region-kit', step: 1 });
      // A built-in skill the channel's policy does not list.
      if (turn === 1) return call('load_skill', { name: 'xlsx', step: 1 });
      if (turn === 2)
        return call('run_command', {
          command: `sh /skills/region-kit/scripts/section.sh ${child} && ls /skills && touch /skills/region-kit/extra`,
          step: 1,
        });
      if (turn === 3) return call('deliver_artifact', { path: `/workspace/out/${child}.md`, step: 1 });
      return done(`Wrote the ${child} section.`);
    });
    model.setHandler(handler);
    try {
      const { taskId, result } = await runFanOut('regions');
      expect(result.html).toContain('Done');

      for (const child of regions) {
        const bodies = seen.get(child) ?? [];
        expect(bodies.length, `${child} turns`).toBe(5);
        // load_skill is in the child's tools with the channel's skills only; the body comes only when loaded.
        const loadSkill = toolsOf(bodies[0]!).find((t) => t.name === 'load_skill');
        expect(loadSkill?.description).toContain("- region-kit: Writes one region's report section.");
        expect(JSON.stringify(loadSkill)).toContain('"enum":["region-kit"]');
        expect(JSON.stringify(bodies[0])).not.toContain('RGK-BODY-41c9');
        const loaded = lastToolResult(bodies[1]!)!;
        expect(loaded.is_error).toBeFalsy();
        expect(loaded.content).toContain(bodyMarker);
        expect(loaded.content).toContain('- /skills/region-kit/scripts/section.sh');
        expect(lastToolResult(bodies[2]!)).toMatchObject({
          is_error: true,
          content: 'Error: there is no skill named "xlsx" in this channel. The skills are: region-kit.',
        });
        // The script ran from the child's own read-only mount; only the allowed skill is mounted.
        const ran = lastToolResult(bodies[3]!)!;
        expect(ran.is_error).toBe(true);
        expect(ran.content).toContain(`section ${child}\nregion-kit\n`);
        expect(ran.content).toMatch(/touch: cannot touch '\/skills\/region-kit\/extra': Read-only file system/);
      }

      const [file] = links(result.html!);
      expect(file?.name).toBe('report.md');
      const text = await (await fetch(new URL(file!.href, handoff.url))).text();
      expect(text).toBe(
        regions.map((r) => `## ${r}\n\nWritten by the region kit from /skills/region-kit/scripts.\n`).join(''),
      );

      const records = await audit(taskId);
      const loads = records.filter((r) => r.type === 'skill.load').map((r) => r.data);
      for (const child of regions) {
        expect(loads.filter((d) => d.workstream === child)).toEqual([
          expect.objectContaining({
            skill: 'region-kit',
            source: 'data dir',
            ok: true,
            bodySha256: expect.any(String),
          }),
          expect.objectContaining({ skill: 'xlsx', ok: false, reason: 'not available' }),
        ]);
        expect(
          records.find((r) => r.type === 'tool.call' && r.data.tool === 'load_skill' && r.data.workstream === child)
            ?.data,
        ).toMatchObject({ action: 'read_files', decision: 'ran' });
      }
      expect(loads).toHaveLength(4);
    } finally {
      model.setHandler(undefined);
    }
  }, 300_000);

  it('fails a workstream whose load_skill would wait for a person (reading files is watched in the channel)', async () => {
    const { seen, handler } = fanOutHandler((child, turn) =>
      turn === 0 ? call('load_skill', { name: 'region-kit', step: 1 }) : done(`Wrote the ${child} section.`),
    );
    model.setHandler(handler);
    try {
      const { taskId, result } = await runFanOut('careful');
      expect(result.html).toContain('failed');
      expect(result.html).toContain('cannot wait for a person');
      expect(seen.get('merge')).toBeUndefined();
      const records = await audit(taskId);
      const failed = records.filter((r) => r.type === 'workstream.finished' && r.data.outcome === 'failed');
      expect(failed.length).toBeGreaterThan(0);
      for (const r of failed) expect(String(r.data.error)).toContain('cannot wait for a person');
      // The skill was never loaded: the call paused before it ran.
      expect(records.filter((r) => r.type === 'skill.load')).toEqual([]);
      expect(JSON.parse((await redis.get(`hf:task:${taskId}`))!).state).toBe('failed');
    } finally {
      model.setHandler(undefined);
    }
  }, 300_000);

  it('gives the children no skills in a channel whose policy allows none', async () => {
    const { seen, handler } = fanOutHandler((child, turn) => {
      if (turn === 0) return call('load_skill', { name: 'region-kit', step: 1 });
      if (turn === 1)
        return call('run_command', {
          command: `test -e /skills && echo mounted || echo no-skills; printf '## %s\\n' ${child} > /workspace/out/${child}.md`,
          step: 1,
        });
      if (turn === 2) return call('deliver_artifact', { path: `/workspace/out/${child}.md`, step: 1 });
      return done(`Wrote the ${child} section without a kit.`);
    });
    model.setHandler(handler);
    try {
      const { taskId, result } = await runFanOut('plain');
      expect(result.html).toContain('Done');
      for (const child of regions) {
        const bodies = seen.get(child) ?? [];
        expect(bodies.length, `${child} turns`).toBe(4);
        expect(toolsOf(bodies[0]!).map((t) => t.name)).not.toContain('load_skill');
        expect(lastToolResult(bodies[1]!)).toMatchObject({ is_error: true });
        expect(lastToolResult(bodies[1]!)!.content).toContain('there is no tool named "load_skill"');
        expect(lastToolResult(bodies[2]!)!.content).toMatch(/<stdout>\nno-skills\n+<\/stdout>/);
      }
      expect((await audit(taskId)).filter((r) => r.type === 'skill.load')).toEqual([]);
    } finally {
      model.setHandler(undefined);
    }
  }, 300_000);
});
