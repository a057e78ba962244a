import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/index.ts';
import {
  type EgressDecisionEvent,
  type EgressProxy,
  prepareEgressSocketDir,
  startEgressProxy,
} from '../../src/runner/egress/index.ts';
import { containerHardeningProblems, type ExecOptions, type Sandbox } from '../../src/runner/sandbox/index.ts';
import { describeDocker, useSandboxFixture } from '../helpers/docker.ts';
import { selfSignedCert } from '../helpers/self-signed.ts';

// The sandbox has no network interface but loopback; its only way out is the proxy's unix
// socket, mounted in. The proxy runs here, on the host, with a resolver and dial that map the
// test names to servers on 127.0.0.1: no traffic leaves this machine's loopback.

function sh(sandbox: Sandbox, script: string, options: Partial<ExecOptions> = {}) {
  return sandbox.exec(['bash', '-c', script], { timeoutMs: 30_000, ...options });
}

const root = mkdtempSync(join(tmpdir(), 'handoff-egress-it-'));

function makeCert(names: string[]): { key: Buffer; cert: Buffer } {
  return selfSignedCert(root, names);
}

describeDocker('Sandbox egress through the allowlisting proxy (real Docker)', () => {
  const fx = useSandboxFixture();
  let tls: { key: Buffer; cert: Buffer };
  let httpServer: Server;
  let httpsServer: Server;
  let proxy: EgressProxy;
  let socketDir: string;
  const events: EgressDecisionEvent[] = [];
  const dials: string[] = [];

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`hello from ${req.headers.host}${req.url}\n`);
  };

  beforeAll(async () => {
    tls = makeCert(['files.example.com']);
    httpServer = createHttpServer(handler).listen(0, '127.0.0.1');
    httpsServer = createHttpsServer({ key: tls.key, cert: tls.cert }, handler).listen(0, '127.0.0.1');
    await Promise.all([once(httpServer, 'listening'), once(httpsServer, 'listening')]);
    const local = new Map([
      ['203.0.113.10:80', (httpServer.address() as { port: number }).port],
      ['203.0.113.10:443', (httpsServer.address() as { port: number }).port],
    ]);
    const names: Record<string, string[]> = {
      'files.example.com': ['203.0.113.10'],
      'other.example.org': ['203.0.113.20'],
      'metadata.example.com': ['169.254.169.254'],
    };
    socketDir = await prepareEgressSocketDir(join(root, 'egress'));
    proxy = await startEgressProxy({
      socketPath: join(socketDir, 'proxy.sock'),
      allowed: () => ['files.example.com', 'metadata.example.com'],
      resolve: async (host) => {
        const addresses = names[host];
        if (!addresses) throw Object.assign(new Error(`no ${host}`), { code: 'ENOTFOUND' });
        return addresses;
      },
      dial: (address, port) => {
        dials.push(`${address}:${port}`);
        const target = local.get(`${address}:${port}`);
        if (target === undefined) throw new Error(`test dial: ${address}:${port} is not mapped to a local server`);
        return netConnect(target, '127.0.0.1');
      },
      onEvent: (event) => events.push(event),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    httpServer?.closeAllConnections();
    httpsServer?.closeAllConnections();
    httpServer?.close();
    httpsServer?.close();
    rmSync(root, { recursive: true, force: true });
  });

  beforeEach(() => {
    events.length = 0;
    dials.length = 0;
    proxy.drainHeld();
  });

  /** A sandbox with egress and the test CA at /workspace/in/ca.pem. */
  async function egressSandbox(): Promise<Sandbox> {
    const workspaceDir = await fx.workspace();
    writeFileSync(join(workspaceDir, 'in', 'ca.pem'), tls.cert);
    const { sandbox } = await fx.sandbox({ workspaceDir, egressSocketDir: socketDir });
    return sandbox;
  }

  it('reaches an allowed domain through the proxy with curl, urllib and requests (HTTP and HTTPS)', async () => {
    const sandbox = await egressSandbox();

    const curl = await sh(sandbox, 'curl -sS http://files.example.com/hello');
    expect(curl).toMatchObject({ exitCode: 0, stdout: 'hello from files.example.com/hello\n' });

    const curlTls = await sh(sandbox, 'curl -sS --cacert /workspace/in/ca.pem https://files.example.com/secure');
    expect(curlTls).toMatchObject({ exitCode: 0, stdout: 'hello from files.example.com/secure\n' });

    const urllib = await sh(
      sandbox,
      `python3 -c "import urllib.request; print(urllib.request.urlopen('http://files.example.com/urllib', timeout=10).read().decode(), end='')"`,
    );
    expect(urllib).toMatchObject({ exitCode: 0, stdout: 'hello from files.example.com/urllib\n' });

    const requests = await sh(
      sandbox,
      `python3 -c "import requests; print(requests.get('https://files.example.com/requests', verify='/workspace/in/ca.pem', timeout=10).text, end='')"`,
    );
    expect(requests).toMatchObject({ exitCode: 0, stdout: 'hello from files.example.com/requests\n' });

    expect(dials).toEqual(['203.0.113.10:80', '203.0.113.10:443', '203.0.113.10:80', '203.0.113.10:443']);
    await expect.poll(() => events.length).toBe(4);
    expect(events.map((e) => [e.method, e.host, e.decision, e.address])).toEqual([
      ['GET', 'files.example.com', 'allowed', '203.0.113.10'],
      ['CONNECT', 'files.example.com', 'allowed', '203.0.113.10'],
      ['GET', 'files.example.com', 'allowed', '203.0.113.10'],
      ['CONNECT', 'files.example.com', 'allowed', '203.0.113.10'],
    ]);
  });

  it('gets 403 for a domain that is not allowed, and for one that resolves to the metadata address', async () => {
    const sandbox = await egressSandbox();

    const held = await sh(sandbox, "curl -sS -w '\\n%{http_code}' http://other.example.org/page");
    expect(held.exitCode).toBe(0);
    expect(held.stdout).toMatch(/other\.example\.org is not on this run's allowlist/);
    expect(held.stdout).toMatch(/approval/);
    expect(held.stdout).toMatch(/\n403$/);

    const heldTls = await sh(sandbox, 'curl -sS https://other.example.org/');
    expect(heldTls.exitCode).not.toBe(0);
    expect(heldTls.stderr).toMatch(/403/);
    expect(proxy.held()).toEqual(['other.example.org']);

    const metadata = await sh(sandbox, "curl -sS -w '\\n%{http_code}' http://metadata.example.com/latest/meta-data/");
    expect(metadata.stdout).toMatch(/169\.254\.169\.254, the cloud metadata service/);
    expect(metadata.stdout).toMatch(/\n403$/);

    const local = await sh(sandbox, "curl -sS -w '\\n%{http_code}' http://localhost:8080/");
    expect(local.stdout).toMatch(/\n403$/);

    expect(dials).toEqual([]);
  });

  it('has no route out but the proxy: direct connections fail and there is no default route', async () => {
    const sandbox = await egressSandbox();

    const direct = await sh(sandbox, "curl --noproxy '*' -sS -m 5 http://203.0.113.10/");
    expect(direct.exitCode).not.toBe(0);
    expect(direct.stderr).toMatch(/Couldn't connect|unreachable/i);

    const socket = await sh(
      sandbox,
      `python3 -c "
import socket
try:
    socket.create_connection(('203.0.113.10', 80), timeout=3)
    print('connected')
except OSError as e:
    print('failed', e.errno)
"`,
    );
    expect(socket.stdout).toMatch(/^failed \d+/);

    const routes = await sh(
      sandbox,
      'cat /proc/net/route; echo ---; cat /proc/net/ipv6_route; echo ---; ls /sys/class/net',
    );
    const [v4, v6, interfaces] = routes.stdout.split('---\n');
    // Only the header line: no routes at all, so certainly no default route (destination 00000000).
    expect(v4!.trim().split('\n').slice(1)).toEqual([]);
    // IPv6 lists the kernel's own "unreachable" entries for ::/0 on lo (RTF_REJECT, 0x0200);
    // a usable default route would lack that flag.
    const v6Defaults = v6!
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[0] === '0'.repeat(32) && f[1] === '00' && (Number.parseInt(f[8] ?? '0', 16) & 0x200) === 0);
    expect(v6Defaults).toEqual([]);
    expect(interfaces!.trim().split('\n')).toEqual(['lo']);

    // The socket directory is mounted read-only.
    const write = await sh(sandbox, 'touch /run/handoff-egress/x');
    expect(write.exitCode).not.toBe(0);

    const info = await fx.docker.getContainer(sandbox.id).inspect();
    expect(info.HostConfig.NetworkMode).toBe('none');
    expect(containerHardeningProblems(info)).toEqual([]);
    const binds = info.Mounts.filter((m) => m.Type === 'bind').map((m) => [m.Destination, m.RW]);
    expect(binds.sort()).toEqual([
      ['/run/handoff-egress', false],
      ['/workspace/in', false],
    ]);
    expect(info.Config.Env).toEqual(
      expect.arrayContaining([
        'HTTP_PROXY=http://127.0.0.1:3128',
        'HTTPS_PROXY=http://127.0.0.1:3128',
        'http_proxy=http://127.0.0.1:3128',
        'https_proxy=http://127.0.0.1:3128',
        'NO_PROXY=',
      ]),
    );

    // The hardening check accepts exactly this extra mount, read-only, and nothing else.
    const writable = structuredClone(info);
    writable.Mounts.find((m) => m.Destination === '/run/handoff-egress')!.RW = true;
    expect(containerHardeningProblems(writable)).toEqual([
      '/run/handoff-egress (the egress proxy socket directory) is writable',
    ]);
    const extra = structuredClone(info);
    extra.Mounts.push({ ...extra.Mounts.find((m) => m.Destination === '/run/handoff-egress')!, Destination: '/run/x' });
    expect(containerHardeningProblems(extra)).toEqual(['unexpected host directory mounted at /run/x']);
  });

  it('keeps the bridge across suspend and attach', async () => {
    const sandbox = await egressSandbox();
    await sandbox.suspend();
    const attached = await fx.driver.attach(sandbox.id);
    expect(attached).toBeDefined();
    const curl = await sh(attached!, 'curl -sS http://files.example.com/after-attach');
    expect(curl).toMatchObject({ exitCode: 0, stdout: 'hello from files.example.com/after-attach\n' });
  });

  it('restarts the bridge if a command kills it', async () => {
    const sandbox = await egressSandbox();
    const kill = await sh(
      sandbox,
      'n=0; for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = socat ] && kill "$(basename "$p")" && n=$((n+1)); done; echo $n',
    );
    expect(Number(kill.stdout.trim())).toBeGreaterThan(0);
    const curl = await sh(
      sandbox,
      'for i in $(seq 50); do curl -sS http://files.example.com/again 2>/dev/null && exit 0; sleep 0.1; done; exit 1',
    );
    expect(curl).toMatchObject({ exitCode: 0, stdout: 'hello from files.example.com/again\n' });
  });

  it('refuses to start with an egress socket directory that does not exist', async () => {
    await expect(fx.sandbox({ egressSocketDir: join(root, 'missing') })).rejects.toMatchObject({
      code: ErrorCodes.sandboxFailed,
      message: expect.stringMatching(/egress socket directory .* is missing/),
    });
  });
});
