import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConnectorHub, connectorTools, toolTrust, wrapUntrusted } from '../../../src/agent/connectors/index.ts';
import { defaultTrustLevels } from '../../../src/approvals/default-policy.ts';
import { type ConnectorConfig, parseConnectors } from '../../../src/config/index.ts';

const server = join(import.meta.dirname, '../../fakes/mcp-stdio-server.mjs');
const secret = 'rec-token-5b1e0c7a9f';

const dir = mkdtempSync(join(tmpdir(), 'handoff-connectors-'));
let hubs: ConnectorHub[] = [];
afterEach(async () => {
  await Promise.all(hubs.map((h) => h.close()));
  hubs = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function records(extra: Record<string, unknown> = {}): ConnectorConfig {
  return parseConnectors(
    {
      records: {
        command: process.execPath,
        args: [server],
        env: { RECORDS_TOKEN: 'env:TEST_RECORDS_TOKEN', RECORDS_LOG: join(dir, 'calls.log') },
        timeout: '2s',
        ...extra,
      },
    },
    'handoff.yaml',
  )[0]!;
}

async function open(config = records(), trust: Partial<typeof defaultTrustLevels> = {}, connectorTrust = {}) {
  const hub = await ConnectorHub.open({
    configs: [config],
    policy: { trustLevels: { ...defaultTrustLevels, ...trust }, connectorTrust },
    env: { ...process.env, TEST_RECORDS_TOKEN: secret },
  });
  hubs.push(hub);
  return hub;
}

describe('connector configuration', () => {
  it('accepts the shapes MCP clients use and refuses a connector with neither command nor url', () => {
    const all = parseConnectors(
      {
        files: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/srv'] },
        tracker: {
          type: 'http',
          url: 'https://mcp.tracker.example.com/mcp',
          headers: { Authorization: 'env:TRACKER' },
        },
        crm: { url: 'https://crm.example.com/mcp', auth: 'oauth' },
      },
      'handoff.yaml',
    );
    expect(all.map((c) => [c.name, c.kind, c.perUser])).toEqual([
      ['files', 'stdio', false],
      ['tracker', 'http', false],
      ['crm', 'http', true],
    ]);
    expect(() => parseConnectors({ broken: { args: ['x'] } }, 'handoff.yaml')).toThrow(/connectors\.broken/);
    expect(() => parseConnectors({ 'Bad.Name': { command: 'x' } }, 'handoff.yaml')).toThrow(/connector name/);
    expect(() => parseConnectors({ x: { command: 'x', trust: { t: 'sometimes' } } }, 'handoff.yaml')).toThrow(
      /read, write, autonomous/,
    );
  });
});

describe('connector tools over stdio (a real MCP server process)', () => {
  it('lists tools with kinds from annotations: read-only → read, anything else or nothing → write', async () => {
    const hub = await open();
    const byTool = Object.fromEntries(hub.tools().map((t) => [t.tool, [t.name, t.action, t.trust]]));
    expect(byTool.lookup).toEqual(['records__lookup', 'connector_read', 'batched']);
    expect(byTool.create_record).toEqual(['records__create_record', 'connector_write', 'watched']);
    expect(byTool.send_email).toEqual(['records__send_email', 'connector_write', 'watched']);
    expect(hub.definitions().map((d) => d.name)).toEqual([...hub.definitions().map((d) => d.name)].sort());
  });

  it('applies the tool allowlist and per-tool overrides from handoff.yaml', async () => {
    const hub = await open(
      records({ tools: ['lookup', 'send_email'], trust: { send_email: 'forbidden', lookup: 'autonomous' } }),
    );
    expect(hub.tools().map((t) => [t.tool, t.trust])).toEqual([
      ['lookup', 'autonomous'],
      ['send_email', 'forbidden'],
    ]);
  });

  it('calls a read tool and frames its result as data', async () => {
    const hub = await open();
    const r = await hub.call('records__lookup', { id: '42' });
    expect(r.isError).toBe(false);
    expect(r.content).toContain('<untrusted_data source="connector:records/lookup">');
    expect(r.content).toContain('record 42: ACME GmbH');
    expect(readFileSync(join(dir, 'calls.log'), 'utf8')).toContain('"tool":"lookup"');
  });

  it('defuses a closing tag inside a result', async () => {
    const hub = await open();
    const r = await hub.call('records__inbox', {});
    expect(r.content.match(/<\/untrusted_data>/g)).toHaveLength(1);
    expect(r.content.trimEnd().endsWith('ask you to contact anyone.')).toBe(true);
  });

  it('gives a hanging tool an error result after the connector timeout', async () => {
    const hub = await open();
    const started = Date.now();
    const r = await hub.call('records__hang', {});
    expect(r.isError).toBe(true);
    expect(r.content).toMatch(/did not answer within 2 s/);
    expect(Date.now() - started).toBeLessThan(15_000);
    // The connector still works afterwards.
    expect((await hub.call('records__lookup', { id: '7' })).isError).toBe(false);
  });

  it('survives a server that crashes mid-run: an error result, then a fresh start', async () => {
    const hub = await open();
    const r = await hub.call('records__crash', {});
    expect(r.isError).toBe(true);
    expect(r.content).toMatch(/connector records failed/);
    const again = await hub.call('records__lookup', { id: '8' });
    expect(again.isError).toBe(false);
    expect(again.content).toContain('record 8');
  });

  it('starts the server with a clean environment holding only its own variables', async () => {
    process.env.HANDOFF_TEST_RUNNER_SECRET = 'runner-only-secret';
    try {
      const hub = await open();
      const names = (await hub.call('records__env_names', {})).content;
      expect(names).toContain('RECORDS_TOKEN');
      expect(names).toContain('PATH');
      expect(names).not.toContain('HANDOFF_TEST_RUNNER_SECRET');
      expect(names).not.toContain('TEST_RECORDS_TOKEN');
      expect(names).not.toMatch(/ANTHROPIC|REDIS_URL|SLACK_|TEAMS_/);
    } finally {
      delete process.env.HANDOFF_TEST_RUNNER_SECRET;
    }
  });

  it("removes the connector's own secret from anything it returns", async () => {
    const hub = await open();
    const r = await hub.call('records__leak', {});
    expect(r.content).not.toContain(secret);
    expect(r.content).toContain('[secret removed]');
  });

  it('names a connector that cannot start and offers none of its tools', async () => {
    const hub = await open(records({ command: join(dir, 'no-such-server') }));
    expect(hub.tools()).toEqual([]);
    expect(hub.problems.join('\n')).toMatch(/records: connector records could not be reached/);
    const missing = await ConnectorHub.open({
      configs: [records()],
      policy: { trustLevels: defaultTrustLevels },
      env: {},
    });
    hubs.push(missing);
    expect(missing.problems.join('\n')).toMatch(/environment variable TEST_RECORDS_TOKEN is not set/);
    expect(missing.problems.join('\n')).not.toContain(secret);
  });

  it('stops the server process when the hub closes', async () => {
    const hub = await open();
    const pidText = (await hub.call('records__env_names', {})).content;
    expect(pidText).toBeTruthy();
    const pids = (await import('node:child_process'))
      .execFileSync('pgrep', ['-f', server], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean);
    expect(pids.length).toBeGreaterThan(0);
    await hub.close();
    const alive = pids.filter((p) => {
      try {
        process.kill(Number(p), 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  });
});

describe('connector trust', () => {
  const config = records({ trust: { create_record: 'batched', lookup: 'watched' } });
  const listed = [
    { name: 'lookup', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
    { name: 'create_record', inputSchema: { type: 'object' }, annotations: { readOnlyHint: false } },
    { name: 'send_email', inputSchema: { type: 'object' } },
  ];
  const tools = connectorTools(config, listed).tools;
  const t = (name: string) => tools.find((x) => x.tool === name)!;

  it('lets handoff.yaml set a level, but never loosen a forbidden kind or a level the policy file set', () => {
    expect(toolTrust(config, t('create_record'), { trustLevels: defaultTrustLevels }).level).toBe('batched');
    expect(
      toolTrust(config, t('create_record'), {
        trustLevels: { ...defaultTrustLevels, connector_write: 'forbidden' },
      }).level,
    ).toBe('forbidden');
    const explained = toolTrust(config, t('create_record'), {
      trustLevels: defaultTrustLevels,
      explicit: { connector_write: true },
    });
    expect(explained.level).toBe('watched');
    expect(explained.why.join('\n')).toMatch(/cannot loosen/);
  });

  it('lets a channel tighten a tool or a whole connector, never loosen', () => {
    const p = { trustLevels: defaultTrustLevels, connectorTrust: { 'records/*': 'watched' as const } };
    expect(toolTrust(records(), t('lookup'), p).level).toBe('watched');
    const loosen = { trustLevels: defaultTrustLevels, connectorTrust: { 'records/send_email': 'autonomous' as const } };
    const r = toolTrust(records(), t('send_email'), loosen);
    expect(r.level).toBe('watched');
    expect(r.why.join('\n')).toMatch(/can only tighten/);
    expect(
      toolTrust(records(), t('lookup'), {
        trustLevels: defaultTrustLevels,
        connectorTrust: { 'records/lookup': 'forbidden' },
      }).level,
    ).toBe('forbidden');
  });

  it('caps a long result', () => {
    const wrapped = wrapUntrusted('connector:x/y', 'a'.repeat(60_000));
    expect(wrapped).toContain('[… 10000 more characters omitted]');
  });
});

describe('a remote connector over Streamable HTTP (a local server built with the SDK)', () => {
  const token = 'tickets-token-3f9e2d1c';
  it('connects with its header secret, calls tools, removes the secret from results, and times out a slow call', async () => {
    const { startFakeMcpHttp } = await import('../../fakes/mcp-http-server.ts');
    const server = await startFakeMcpHttp({ token, slowMs: 5000 });
    try {
      const config = parseConnectors(
        { tickets: { type: 'http', url: server.url, headers: { Authorization: 'env:TICKETS_AUTH' }, timeout: '1s' } },
        'handoff.yaml',
      )[0]!;
      const hub = await ConnectorHub.open({
        configs: [config],
        policy: { trustLevels: defaultTrustLevels },
        env: { TICKETS_AUTH: `Bearer ${token}` },
      });
      hubs.push(hub);
      expect(hub.tools().map((t) => [t.tool, t.action])).toEqual([
        ['close_ticket', 'connector_write'],
        ['echo_auth', 'connector_read'],
        ['search_tickets', 'connector_read'],
        ['slow', 'connector_read'],
      ]);
      const found = await hub.call('tickets__search_tickets', { q: 'ACME' });
      expect(found.content).toContain('T-17 (open)');
      const echoed = await hub.call('tickets__echo_auth', {});
      expect(echoed.content).not.toContain(token);
      expect(echoed.content).toContain('[secret removed]');
      const slow = await hub.call('tickets__slow', {});
      expect(slow.isError).toBe(true);
      expect(slow.content).toContain('did not answer within 1 s');
      expect(server.calls.map((c) => c.tool)).toEqual(['search_tickets', 'echo_auth']);
      await hub.close();

      // Without the header the server refuses, and the hub says so without offering tools.
      const refused = await ConnectorHub.open({
        configs: [config],
        policy: { trustLevels: defaultTrustLevels },
        env: { TICKETS_AUTH: 'Bearer wrong' },
      });
      hubs.push(refused);
      expect(refused.tools()).toEqual([]);
      expect(refused.problems.join('\n')).toMatch(
        /tickets: connector tickets could not be reached through http:\/\/127\.0\.0\.1/,
      );
      expect(refused.problems.join('\n')).not.toContain('wrong');
    } finally {
      await server.close();
    }
  });
});

describe('policy names a connector handoff.yaml does not configure', () => {
  it('is named in a warning for each channel rule that lists it', async () => {
    const { parsePolicy } = await import('../../../src/approvals/index.ts');
    const { unknownConnectors } = await import('../../../src/runner/index.ts');
    const policy = parsePolicy('version: 1\nchannels:\n  "slack:C01":\n    connectors: [records, crm]\n', 'p.yaml');
    expect(unknownConnectors(policy, [records()])).toEqual([
      'p.yaml: channels.slack:C01.connectors names crm, which handoff.yaml does not configure',
    ]);
    expect(unknownConnectors(policy, [records(), { ...records(), name: 'crm' }])).toEqual([]);
  });
});
