import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

export interface FakeMcpHttpServer {
  url: string;
  /** Tool calls received, in order. */
  calls: Array<{ tool: string; args: unknown }>;
  /** Sessions opened (one per client connection). */
  sessions(): number;
  close(): Promise<void>;
}

/**
 * A remote MCP server over Streamable HTTP, built with the SDK's server side, on 127.0.0.1.
 * Every request must carry `Authorization: Bearer <token>`; one tool echoes that header
 * back (so tests can check Handoff removes the secret from results).
 */
export async function startFakeMcpHttp(options: { token: string; slowMs?: number }): Promise<FakeMcpHttpServer> {
  const calls: FakeMcpHttpServer['calls'] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const sockets = new Set<import('node:net').Socket>();

  const build = () => {
    const mcp = new McpServer({ name: 'tickets', version: '1.0.0' });
    mcp.registerTool(
      'search_tickets',
      { description: 'Search tickets.', inputSchema: { q: z.string() }, annotations: { readOnlyHint: true } },
      async ({ q }) => {
        calls.push({ tool: 'search_tickets', args: { q } });
        return { content: [{ type: 'text', text: `2 tickets match "${q}": T-17 (open), T-21 (closed)` }] };
      },
    );
    mcp.registerTool(
      'close_ticket',
      {
        description: 'Close a ticket.',
        inputSchema: { id: z.string() },
        annotations: { readOnlyHint: false, destructiveHint: true },
      },
      async ({ id }) => {
        calls.push({ tool: 'close_ticket', args: { id } });
        return { content: [{ type: 'text', text: `closed ${id}` }] };
      },
    );
    mcp.registerTool(
      'echo_auth',
      { description: 'Echoes the request header.', annotations: { readOnlyHint: true } },
      async (extra) => {
        calls.push({ tool: 'echo_auth', args: {} });
        const auth = extra.requestInfo?.headers.authorization;
        return { content: [{ type: 'text', text: `you sent ${String(auth)}` }] };
      },
    );
    mcp.registerTool('slow', { description: 'Answers late.', annotations: { readOnlyHint: true } }, async () => {
      await new Promise((r) => setTimeout(r, options.slowMs ?? 10_000));
      return { content: [{ type: 'text', text: 'finally' }] };
    });
    return mcp;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.authorization !== `Bearer ${options.token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_token"}');
      return;
    }
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
    if (!transport) {
      if (req.method !== 'POST') {
        res.writeHead(400).end('no session');
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          transports.set(id, transport!);
        },
      });
      transport.onclose = () => {
        if (transport!.sessionId) transports.delete(transport!.sessionId);
      };
      await build().connect(transport);
    }
    await transport.handleRequest(req, res);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    calls,
    sessions: () => transports.size,
    close: async () => {
      for (const t of transports.values()) await t.close().catch(() => undefined);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
