import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeAnthropicServer, type MessagesRequestBody, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

function lastResult(body: MessagesRequestBody): { content: string; is_error?: boolean } {
  const last = (body.messages as Array<{ content: unknown }>).at(-1)!;
  return (last.content as Array<{ type: string; content: string; is_error?: boolean }>).find(
    (b) => b.type === 'tool_result',
  )!;
}

const use = (name: string, input: Record<string, unknown>) => ({ content: [{ type: 'tool_use', name, input }] });

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

describeDocker('a run with web access through the allowlisting proxy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-egress-run-'));
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  const servers: Server[] = [];
  const hits: string[] = [];

  beforeAll(async () => {
    const files = await listen((req, res) => {
      hits.push(`files ${req.url}`);
      if (req.url === '/data.csv') res.end('region,amount\nEast,10\nWest,20\n');
      else if (req.url === '/page.html')
        res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end(
            '<html><head><title>Rates</title></head><body><h1>Rates</h1><p>EUR 1.08</p><script>x()</script></body></html>',
          );
      else res.end('hello from files');
    });
    const other = await listen((req, res) => {
      hits.push(`other ${req.url}`);
      res.end('{"EUR":1.08}');
    });
    servers.push(files.server, other.server);
    // Test names resolve to documentation addresses; connections to those go to loopback servers.
    const names: Record<string, string[]> = {
      'files.example.com': ['203.0.113.10'],
      'api.other.example.net': ['203.0.113.11'],
      'metadata.example.com': ['169.254.169.254'],
    };
    const ports: Record<string, number> = { '203.0.113.10:80': files.port, '203.0.113.11:80': other.port };
    model = await startFakeAnthropic();
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      'version: 1\nchannels:\n  "web:*":\n    webSearch: true\n    egressDomains: [files.example.com, api.other.example.net, metadata.example.com]\n',
    );
    handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url, HANDOFF_POLICY: policy },
      egressNetwork: {
        resolve: async (host) => {
          const a = names[host];
          if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
          return a;
        },
        dial: (address, port) => {
          const local = ports[`${address}:${port}`];
          if (!local) throw new Error(`test dial: ${address}:${port} is not mapped`);
          return connect(local, '127.0.0.1');
        },
      },
    });
  });
  afterAll(async () => {
    await handoff?.close();
    await model?.close();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reaches envelope domains from curl, Python and web_fetch; holds another for approval; refuses metadata', async () => {
    const results: Record<string, { content: string; is_error?: boolean }> = {};
    const after = (key: string, next: ReturnType<typeof use>) => (body: MessagesRequestBody) => {
      results[key] = lastResult(body);
      return next;
    };
    let planningPrompt = '';
    let searchTools = '';
    model.enqueue(
      (body) => {
        planningPrompt = JSON.stringify(body);
        return {
          content: [
            {
              type: 'tool_use',
              name: 'submit_plan',
              input: {
                summary: 'Download the sales data and the rates page, and write a report.',
                steps: [
                  { title: 'Download', actions: ['network_egress', 'run_commands'] },
                  { title: 'Write the report', actions: ['run_commands', 'create_files'] },
                ],
                deliverables: [{ name: 'report.md', type: 'md' }],
                egressDomains: ['files.example.com', 'metadata.example.com', 'evil.example.org'],
              },
            },
          ],
        };
      },
      use('run_command', {
        command:
          'curl -sS http://files.example.com/data.csv -o /tmp/data.csv && wc -l < /tmp/data.csv && python3 -c "import urllib.request; print(urllib.request.urlopen(\'http://files.example.com/hello\').read().decode())"',
        step: 1,
      }),
      after(
        'allowed',
        use('run_command', {
          command: "curl -s -o /dev/null -w '%{http_code}\\n' http://api.other.example.net/v1/rates",
          step: 1,
        }),
      ),
      after('held', use('run_command', { command: 'curl -sS http://api.other.example.net/v1/rates', step: 1 })),
      after(
        'granted',
        use('run_command', {
          command:
            "curl -s -o /dev/null -w '%{http_code}\\n' http://metadata.example.com/latest/meta-data/; curl -sS --max-time 5 --noproxy '*' http://203.0.113.10/ || echo NO-ROUTE",
          step: 1,
        }),
      ),
      (body: MessagesRequestBody) => {
        results.refused = lastResult(body);
        searchTools = JSON.stringify(body.tools);
        // The API ran a web search itself, then the model asks for a page.
        return {
          content: [
            {
              type: 'server_tool_use',
              id: 'srvtoolu_1',
              name: 'web_search',
              input: { query: 'EUR rate files.example.com' },
            },
            {
              type: 'web_search_tool_result',
              tool_use_id: 'srvtoolu_1',
              content: [
                {
                  type: 'web_search_result',
                  url: 'http://files.example.com/page.html',
                  title: 'Rates',
                  encrypted_content: 'x',
                  page_age: null,
                },
              ],
            },
            { type: 'tool_use', name: 'web_fetch', input: { url: 'http://files.example.com/page.html', step: 1 } },
          ],
        };
      },
      after(
        'fetched',
        use('run_command', { command: 'printf "# Report\\nEUR 1.08\\n" > /workspace/out/report.md', step: 2 }),
      ),
      use('deliver_artifact', { path: '/workspace/out/report.md', step: 2 }),
      { content: [{ type: 'text', text: 'Report delivered.' }] },
    );

    const ana = new ConsoleClient(handoff.url, 'Ana');
    const bo = new ConsoleClient(handoff.url, 'Bo');
    const posted = await ana.post('@handoff download the sales data and write a report');
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'));
    expect(planningPrompt).toContain('Web domains this channel allows');
    expect(card.html).toContain('Web access: files.example.com, metadata.example.com');
    expect(card.html).toContain('web search limited to these domains');
    expect(card.html).not.toContain('evil.example.org');
    const { taskId } = planButtons(card.html!);
    expect((await bo.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);

    const approval = await ana.waitForCard(thread, (h) => h.includes('card approval'), 90_000);
    expect(approval.html).toContain('the run wants to reach api.other.example.net');
    const approvalId = /data-approval="([^"]+)"/.exec(approval.html!)![1]!;
    expect((await bo.action({ action: 'approve-action', taskId, approvalId })).status).toBe(200);
    await ana.waitForCard(thread, (h) => h.includes('card result'), 120_000);

    expect(results.allowed!.content).toMatch(/<stdout>\n3\nhello from files/);
    expect(results.held!.content).toContain('403');
    expect(results.held!.content).toContain('Bo approved reaching api.other.example.net for this run');
    expect(results.granted!.content).toContain('{"EUR":1.08}');
    expect(results.refused!.content).toMatch(/<stdout>\n403\n[\s\S]*NO-ROUTE/);
    expect(results.fetched!.content).toContain('<untrusted_data source="web:http://files.example.com/page.html">');
    expect(results.fetched!.content).toContain('200 text/html — Rates');
    expect(results.fetched!.content).toContain('EUR 1.08');
    expect(results.fetched!.content).not.toContain('x()');
    // Nothing ever connected to the metadata stand-in or went around the proxy.
    // Web search is the API's own tool, limited to the envelope's domains, and audited.
    expect(searchTools).toContain('"type":"web_search_20250305"');
    expect(searchTools).toContain('"allowed_domains":["files.example.com","metadata.example.com"]');
    expect(hits).toEqual(['files /data.csv', 'files /hello', 'other /v1/rates', 'files /page.html']);

    const redis = new Redis(handoff.redisUrl);
    const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r)).filter((r) => r.taskId === taskId);
    redis.disconnect();
    const egress = audit.filter((r) => r.type === 'egress.request').map((r) => r.data);
    expect(egress.map((e) => [e.via, e.host, e.decision])).toEqual([
      ['proxy', 'files.example.com', 'allowed'],
      ['proxy', 'files.example.com', 'allowed'],
      ['proxy', 'api.other.example.net', 'held'],
      ['proxy', 'api.other.example.net', 'allowed'],
      ['proxy', 'metadata.example.com', 'refused'],
      ['web_fetch', 'files.example.com', 'allowed'],
    ]);
    expect(egress[0].bytesDown).toBeGreaterThan(0);
    expect(egress[4].reason).toMatch(/169\.254\.169\.254/);
    expect(audit.find((r) => r.type === 'tool.web_search')!.data).toMatchObject({
      tool: 'web_search',
      input: { query: 'EUR rate files.example.com' },
    });
    const requested = audit.find((r) => r.type === 'action.approval_requested')!.data;
    expect(requested).toMatchObject({ action: 'network_egress', trust: 'watched' });
  }, 300_000);
});
