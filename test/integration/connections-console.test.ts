import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConnectors } from '../../src/config/index.ts';
import { type FakeAnthropicServer, type MessagesRequestBody, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { type FakeMcpOAuthServer, startMcpOAuthServer } from '../fakes/mcp-oauth-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const use = (name: string, input: Record<string, unknown>) => ({ content: [{ type: 'tool_use', name, input }] });

/** The text of the last tool result the model was sent. */
function lastResult(body: MessagesRequestBody): string {
  const last = (body.messages as Array<{ content: unknown }>).at(-1)!;
  const blocks = Array.isArray(last.content) ? (last.content as Array<{ type: string; content?: unknown }>) : [];
  const result = blocks.find((b) => b.type === 'tool_result');
  return typeof result?.content === 'string' ? result.content : JSON.stringify(result?.content ?? '');
}

/** A plan the scripted planner submits. */
function plan(summary: string, extra: Record<string, unknown> = {}) {
  return use('submit_plan', {
    summary,
    steps: [{ title: 'Write it down', actions: ['run_commands', 'create_files'] }],
    deliverables: [{ name: 'who.md', type: 'md' }],
    ...extra,
  });
}

/** The console's Connect action as the page sends it. */
async function connect(client: ConsoleClient, taskId: string | undefined, connector = 'notes') {
  const res = await fetch(`${client.url}/api/actions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: new URL(client.url).origin },
    body: JSON.stringify({ action: 'connect', connector, author: client.author, ...(taskId ? { taskId } : {}) }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { status?: string; message?: string; authorizationUrl?: string; error?: string },
  };
}

/** What a person reads on a page: the body's text, whitespace collapsed. */
function textOf(html: string): string {
  return html
    .replace(/<head>[\s\S]*<\/head>/, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

describeDocker('per-user connections through the web console (OAuth fake, real Handoff)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-connections-console-'));
  let model: FakeAnthropicServer;
  let notes: FakeMcpOAuthServer;
  let handoff: TestHandoff;
  let redis: Redis;

  const audit = async () =>
    (await redis.lrange('hf:audit', 0, -1)).map(
      (r) => JSON.parse(r) as { type: string; taskId?: string; actor?: string; data: Record<string, unknown> },
    );

  /** A browser signed in at the service as `as` opens the link; the service sends it back to Handoff. */
  async function consent(authorizationUrl: string, as: string): Promise<{ status: number; text: string }> {
    const res = await fetch(authorizationUrl, { redirect: 'manual', headers: { 'x-fake-user': as } });
    expect(res.status).toBe(302);
    const back = res.headers.get('location') ?? '';
    expect(back.startsWith(`${handoff.url}/connectors/oauth/callback?`)).toBe(true);
    const page = await fetch(back);
    return { status: page.status, text: textOf(await page.text()) };
  }

  beforeAll(async () => {
    model = await startFakeAnthropic();
    notes = await startMcpOAuthServer();
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, 'version: 1\nchannels:\n  "web:*":\n    connectors: [notes]\n');
    handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url, HANDOFF_POLICY: policy },
      connectors: parseConnectors({ notes: { url: notes.mcpUrl, auth: 'oauth', title: 'Fake Notes' } }, 'handoff.yaml'),
    });
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await notes?.close();
    await model?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('Connect card → the clicker’s own link → callback → plan v2 sees the tools → the run acts as Ana; disconnect', async () => {
    const prompts: string[] = [];
    model.enqueue((body) => {
      prompts.push(JSON.stringify(body));
      return plan('Write down who I am (without Fake Notes for now).');
    });

    const ana = new ConsoleClient(handoff.url, 'Ana');
    const bo = new ConsoleClient(handoff.url, 'Bo');
    const posted = await ana.post('@handoff find out who I am in Fake Notes and write it down');
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const taskId = posted.body.taskId!;

    // The planner was told the connector is missing, and the thread got the Connect card.
    const card = await ana.waitForCard(thread, (h) => h.includes('card connect'), 120_000);
    expect(card.html).toContain('Ana: Handoff can use Fake Notes as you once you connect it.');
    expect(card.html).toContain('data-action="connect"');
    expect(card.html).toContain('>Connect Fake Notes</button>');
    expect(card.html).not.toContain(notes.url);
    await ana.waitForCard(thread, (h) => h.includes('card plan') && h.includes('Plan v1'));
    expect(prompts[0]).toContain('Connectors not available for this request');
    expect(prompts[0]).not.toContain('notes__whoami');
    const needed = (await audit()).filter((r) => r.type === 'connection.needed' && r.taskId === taskId);
    expect(needed.map((r) => r.data.connector)).toEqual(['notes']);
    // One card per task and connector.
    expect((await ana.thread(thread)).filter((m) => m.html?.includes('card connect'))).toHaveLength(1);

    // Bo presses Connect: he gets a link of his own, which connects his account, not Ana's.
    const bos = await connect(bo, taskId);
    expect(bos.status).toBe(200);
    expect(bos.body.status).toBe('needs_authorization');
    expect(bos.body.message).toContain("this task uses Ana's");
    expect(new URL(bos.body.authorizationUrl!).origin).toBe(notes.url);
    const boPage = await consent(bos.body.authorizationUrl!, 'bo');
    expect(boPage.status).toBe(200);
    expect(boPage.text).toContain('Connected to Fake Notes.');
    // The card is Ana's: it still waits for her.
    expect((await ana.waitForCard(thread, (h) => h.includes('card connect'))).html).toContain('connect-open');

    // Ana presses Connect, follows her link and consents: the callback is on the bot's own port.
    model.enqueue((body) => {
      prompts.push(JSON.stringify(body));
      return plan('Ask Fake Notes who Ana is and write it down.', {
        steps: [
          { title: 'Ask Fake Notes who I am', actions: ['connector_read'] },
          { title: 'Write it down', actions: ['run_commands', 'create_files'] },
        ],
        connectorTools: ['notes__whoami'],
      });
    });
    const anas = await connect(ana, taskId);
    expect(anas.body.status).toBe('needs_authorization');
    expect(anas.body.message).not.toContain("this task uses Ana's");
    expect(anas.body.authorizationUrl).not.toBe(bos.body.authorizationUrl);
    const anaPage = await consent(anas.body.authorizationUrl!, 'ana');
    expect(anaPage.status).toBe(200);
    expect(anaPage.text).toBe('Connected to Fake Notes. You can close this tab and go back to the thread.');

    // The card says so, and plan v2 is drafted with the connector's tools in view.
    const done = await ana.waitForCard(thread, (h) => h.includes('card connect') && h.includes('connect-connected'));
    expect(done.html).toContain('Connected by Ana');
    expect(done.html).not.toContain('data-action="connect"');
    const v2 = await ana.waitForCard(thread, (h) => h.includes('card plan') && h.includes('Plan v2'));
    expect(v2.html).toContain('Ana connected Fake Notes; use it where the request needs it');
    expect(v2.html).toContain('Fake Notes: whoami');
    expect(prompts[1]).toContain('notes__whoami');
    expect(prompts[1]).not.toContain('Connectors not available for this request');
    // Ana pressing Connect again: already connected.
    expect((await connect(ana, taskId)).body).toMatchObject({ status: 'connected' });

    // Bo approves; the run's whoami answers as Ana.
    let whoami = '';
    model.enqueue(
      use('notes__whoami', { step: 1 }),
      (body) => {
        whoami = lastResult(body);
        return use('run_command', { command: 'printf "# Who\\n\\nana\\n" > /workspace/out/who.md', step: 2 });
      },
      use('deliver_artifact', { path: '/workspace/out/who.md', step: 2 }),
      { content: [{ type: 'text', text: 'Fake Notes says you are ana.' }] },
    );
    expect((await bo.action({ action: 'approve', ...planButtons(v2.html!) })).status).toBe(200);
    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(links(result.html!).map((l) => l.name)).toEqual(['who.md']);
    expect(whoami).toContain('<untrusted_data source="connector:notes/whoami">');
    // The identity the service gave Ana's token, not Bo's.
    expect(whoami).toMatch(/<untrusted_data source="connector:notes\/whoami">\s*ana\s*<\/untrusted_data>/);

    // Ana's connections, as the console's panel lists them; no token anywhere.
    const listed = await fetch(`${handoff.url}/api/console/connections?author=Ana`);
    expect(listed.status).toBe(200);
    const list = (await listed.json()) as {
      connections: Array<{ connector: string; connected: boolean; refreshable?: boolean; connectedAt?: string }>;
      html: string;
    };
    expect(list.connections).toEqual([
      expect.objectContaining({ connector: 'notes', title: 'Fake Notes', connected: true, refreshable: true }),
    ]);
    expect(list.html).toContain('data-connection-op="disconnect"');
    for (const secret of notes.issued) {
      expect(JSON.stringify(list)).not.toContain(secret);
      expect(JSON.stringify(await audit())).not.toContain(secret);
    }
    const records = await audit();
    expect(records.find((r) => r.type === 'connection.connected' && r.actor === 'web:web:ana')?.data).toEqual({
      connector: 'notes',
      user: 'web:web:ana',
    });
    expect(records.some((r) => r.type === 'connection.connected' && r.actor === 'web:web:bo')).toBe(true);

    // Disconnect: removed here and revoked at the service.
    const revokedBefore = notes.revoked.length;
    const off = await fetch(`${handoff.url}/api/console/connections/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(handoff.url).origin },
      body: JSON.stringify({ connector: 'notes', author: 'Ana' }),
    });
    expect(off.status).toBe(200);
    expect(((await off.json()) as { message: string }).message).toContain('Fake Notes revoked it');
    expect(notes.revoked.length).toBeGreaterThan(revokedBefore);
    const revoked = (await audit()).find((r) => r.type === 'connection.revoked');
    expect(revoked?.data).toMatchObject({ connector: 'notes', user: 'web:web:ana', remote: 'revoked' });
    const after = (await (await fetch(`${handoff.url}/api/console/connections?author=Ana`)).json()) as {
      connections: Array<{ connected: boolean }>;
      html: string;
    };
    expect(after.connections).toEqual([expect.objectContaining({ connector: 'notes', connected: false })]);
    expect(after.html).toContain('data-connection-op="connect"');

    // A later request has no connection again: the planner is told, and its thread gets a Connect card.
    model.enqueue((body) => {
      prompts.push(JSON.stringify(body));
      return plan('Write down who I am.');
    });
    const again = await ana.post('@handoff who am I in Fake Notes?');
    const card2 = await ana.waitForCard(again.body.message!.id, (h) => h.includes('card connect'), 120_000);
    expect(card2.html).toContain('connect-open');
    await ana.waitForCard(again.body.message!.id, (h) => h.includes('card plan'));
    expect(prompts[2]).toContain('Connectors not available for this request');
    expect(
      (await audit()).filter((r) => r.type === 'connection.needed' && r.taskId === again.body.taskId),
    ).toHaveLength(1);
  }, 300_000);

  it('connecting while the plan is still being drafted asks for the next version once it is ready', async () => {
    const prompts: string[] = [];
    let release: () => void = () => undefined;
    const connected = new Promise<void>((r) => {
      release = r;
    });
    // The planner's answer waits until Cy has connected: the plan being drafted never saw the tools.
    model.enqueue(async (body) => {
      prompts.push(JSON.stringify(body));
      await connected;
      return plan('Write down who I am.');
    });
    const cy = new ConsoleClient(handoff.url, 'Cy');
    const posted = await cy.post('@handoff who am I in Fake Notes?');
    const thread = posted.body.message!.id;
    await cy.waitForCard(thread, (h) => h.includes('card connect'), 120_000);
    model.enqueue((body) => {
      prompts.push(JSON.stringify(body));
      return plan('Ask Fake Notes who Cy is and write it down.', { connectorTools: ['notes__whoami'] });
    });
    const link = await connect(cy, posted.body.taskId);
    expect((await consent(link.body.authorizationUrl!, 'cy')).status).toBe(200);
    await cy.waitForCard(thread, (h) => h.includes('card connect') && h.includes('Connected by Cy'));
    release();
    // v1 comes out without the connector; v2 follows by itself, with it.
    const v2 = await cy.waitForCard(thread, (h) => h.includes('card plan') && h.includes('Plan v2'), 120_000);
    expect(v2.html).toContain('Cy connected Fake Notes');
    expect(prompts[0]).toContain('Connectors not available for this request');
    expect(prompts[1]).toContain('notes__whoami');
    const v1 = (await cy.thread(thread)).find((m) => m.html?.includes('Plan v1'));
    expect(v1?.html).toContain('Replaced by a newer plan version');
  }, 180_000);

  it('`handoff dev` keeps the connections key it generated in its data dir, readable by its owner only', () => {
    const path = join(handoff.dataDir, 'connections-key');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64')).toHaveLength(32);
  });

  it('refuses what it cannot do, in plain words', async () => {
    const ana = new ConsoleClient(handoff.url, 'Ana');
    const unknown = await connect(ana, undefined, 'drive');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toContain('no connector here is connected per person as "drive"');
    const bad = await fetch(`${handoff.url}/api/console/connections/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(handoff.url).origin },
      body: JSON.stringify({ connector: '../x', author: 'Ana' }),
    });
    expect(bad.status).toBe(400);
    // A callback nobody started is refused without touching anything.
    const forged = await fetch(`${handoff.url}/connectors/oauth/callback?code=abc&state=nope`);
    expect(forged.status).toBe(400);
  });
});
