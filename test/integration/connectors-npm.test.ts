import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConnectorHub } from '../../src/agent/index.ts';
import { defaultTrustLevels } from '../../src/approvals/default-policy.ts';
import { builtInPolicy, parsePolicy } from '../../src/approvals/index.ts';
import { parseConnectors } from '../../src/config/index.ts';
import { connectorChecks, connectorExplain, connectorsList, connectorsTest } from '../../src/runner/index.ts';

// The reference MCP servers from npm, started the way an MCP client config starts them: npx -y.
const dir = mkdtempSync(join(tmpdir(), 'handoff-npm-connectors-'));
writeFileSync(join(dir, 'q3.txt'), 'Q3 revenue: 1.2M\n');
const configs = parseConnectors(
  {
    files: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', dir], title: 'Shared drive' },
    memory: {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-memory'],
      env: { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') },
    },
    broken: { command: join(dir, 'missing-server') },
  },
  'handoff.yaml',
);
const [files, memory] = configs as [(typeof configs)[0], (typeof configs)[0]];
const policy = parsePolicy(
  `version: 1
channels:
  "slack:C0FIN*":
    connectors: [files, memory]
    connectorTrust:
      files/*: watched
  "slack:C0FINREAD":
    connectorTrust:
      files/read_text_file: autonomous
`,
  'policy.yaml',
);

function recorder() {
  const lines: string[] = [];
  return { lines, out: { log: (l: string) => lines.push(l), error: (l: string) => lines.push(`ERR ${l}`) } };
}

function running(pattern: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('connectors from npm (the reference filesystem and memory servers)', () => {
  it('lists and reads through the filesystem server, refuses a path outside its root, then stops it', async () => {
    const hub = await ConnectorHub.open({ configs: [files], policy: { trustLevels: defaultTrustLevels } });
    try {
      const tools = Object.fromEntries(hub.tools().map((t) => [t.tool, `${t.action}/${t.trust}`]));
      expect(tools.read_text_file).toBe('connector_read/batched');
      expect(tools.list_directory).toBe('connector_read/batched');
      expect(tools.write_file).toBe('connector_write/watched');
      expect(tools.move_file).toBe('connector_write/watched');
      const read = await hub.call('files__read_text_file', { path: join(dir, 'q3.txt') });
      expect(read.isError).toBe(false);
      expect(read.content).toContain('Q3 revenue: 1.2M');
      const outside = await hub.call('files__read_text_file', { path: '/etc/passwd' });
      expect(outside.isError).toBe(true);
    } finally {
      await hub.close();
    }
    // npx's child (the server itself) is gone too, not only npx.
    await new Promise((r) => setTimeout(r, 500));
    expect(running(`server-filesystem ${dir}`)).toEqual([]);
  });

  it('keeps state in the memory server across calls of one run', async () => {
    const hub = await ConnectorHub.open({ configs: [memory], policy: { trustLevels: defaultTrustLevels } });
    try {
      expect(hub.lookup('memory__create_entities')?.action).toBe('connector_write');
      expect(hub.lookup('memory__read_graph')?.action).toBe('connector_read');
      const created = await hub.call('memory__create_entities', {
        entities: [{ name: 'ACME', entityType: 'customer', observations: ['renewal due in March'] }],
      });
      expect(created.isError).toBe(false);
      const graph = await hub.call('memory__read_graph', {});
      expect(graph.content).toContain('renewal due in March');
    } finally {
      await hub.close();
    }
  });

  it('handoff connectors list shows channels, tools and levels; test reports latency; a broken one fails', async () => {
    const list = recorder();
    expect(await connectorsList(configs, policy, { channel: 'slack:C0FIN01' }, list.out)).toBe(0);
    const text = list.lines.join('\n');
    expect(text).toContain('files (Shared drive)');
    expect(text).toContain(`stdio: npx -y @modelcontextprotocol/server-filesystem ${dir}`);
    expect(text).toContain('channels: slack:C0FIN*');
    // The channel tightens every files tool to watched.
    expect(text).toContain('read_text_file: connector read, watched (readOnlyHint: true)');
    expect(text).toContain('read_graph: connector read, batched (readOnlyHint: true)');
    expect(text).toMatch(/broken[\s\S]*ERR +problem: broken: connector broken could not be reached/);

    const test = recorder();
    expect(await connectorsTest(configs, builtInPolicy(), 'files', {}, test.out)).toBe(0);
    expect(test.lines[0]).toMatch(/^files: ok — connected and listed \d+ tools in \d+ ms$/);
    const bad = recorder();
    expect(await connectorsTest(configs, builtInPolicy(), 'broken', {}, bad.out)).toBe(1);
    expect(bad.lines.join('\n')).toContain('broken: FAILED');
    expect(await connectorsTest(configs, builtInPolicy(), 'nope', {}, recorder().out)).toBe(2);
  });

  it('policy explain connector:NAME/TOOL gives the level and every rule that shaped it', async () => {
    const explained = await connectorExplain(configs, policy, 'slack:C0FINREAD', 'connector:files/read_text_file');
    expect(explained).toContain('connector files: allowed in this channel');
    expect(explained).toContain('action connector:files/read_text_file: watched');
    expect(explained).toContain('read_text_file is a connector read (readOnlyHint: true): batched');
    expect(explained).toContain('connectorTrust files/*: watched');
    expect(explained).toContain(
      'connectorTrust files/read_text_file: autonomous would loosen it, and a channel can only tighten',
    );
    const elsewhere = await connectorExplain(configs, policy, 'slack:C0OTHER', 'connector:files/write_file');
    expect(elsewhere).toContain('not allowed in this channel');
    const unknown = await connectorExplain(configs, policy, 'slack:C0FIN01', 'connector:files/format_disk');
    expect(unknown).toContain('lists no tool named format_disk');
    expect(unknown).toContain('action connector:files/format_disk: watched');
  });

  it('handoff doctor checks each connector', async () => {
    const checks = await connectorChecks(configs, builtInPolicy());
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['Connector files', true],
      ['Connector memory', true],
      ['Connector broken', false],
    ]);
    expect(checks[2]!.fix).toContain('handoff connectors test broken');
  });
});
