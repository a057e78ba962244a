import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import Dockerode from 'dockerode';
import { expect, it } from 'vitest';
import { ErrorCodes, HandoffError } from '../../src/core/index.ts';
import {
  containerHardeningProblems,
  DockerSandboxDriver,
  type ExecOptions,
  type Sandbox,
} from '../../src/runner/sandbox/index.ts';
import {
  describeDocker,
  execWrappers,
  sandboxImage,
  sandboxUser,
  testLimits,
  useSandboxFixture,
  wrapperName,
} from '../helpers/docker.ts';

const MiB = 1024 * 1024;

function sh(sandbox: Sandbox, script: string, options: Partial<ExecOptions> = {}) {
  return sandbox.exec(['bash', '-c', script], { timeoutMs: 20_000, ...options });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function expectGone(docker: Dockerode, id: string): Promise<void> {
  await expect(docker.getContainer(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
}

describeDocker('DockerSandboxDriver (real Docker)', () => {
  const fx = useSandboxFixture();

  it('creates a container with every hardening setting in place (docker inspect)', async () => {
    const secret = 'sk-ant-test-must-not-leak';
    process.env.ANTHROPIC_API_KEY = secret;
    const { sandbox, workspaceDir } = await fx.sandbox();
    delete process.env.ANTHROPIC_API_KEY;
    const info = await fx.docker.getContainer(sandbox.id).inspect();
    const host = info.HostConfig;

    expect(containerHardeningProblems(info)).toEqual([]);
    expect(info.Config.User).toBe(sandboxUser);
    expect(info.Config.Labels).toMatchObject({ 'org.handoff.task': 'task-test', 'org.handoff.sandbox': '1' });
    expect(info.Name).toMatch(/^\/handoff-test-/);
    expect(host.Privileged).toBe(false);
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd ?? []).toEqual([]);
    expect(host.SecurityOpt).toContain('no-new-privileges');
    expect((host.SecurityOpt as string[]).some((opt) => /seccomp[:=]unconfined/.test(opt))).toBe(false);
    expect(host.PidsLimit).toBe(testLimits.pids);
    expect(host.Memory).toBe(testLimits.memoryMb * MiB);
    expect(host.MemorySwap).toBe(testLimits.memoryMb * MiB);
    expect(host.NanoCpus).toBe(testLimits.cpus * 1e9);
    expect(host.NetworkMode).toBe('none');
    expect(host.IpcMode).toBe('private');
    expect(host.Init).toBe(true);
    expect(host.Tmpfs).toEqual({ '/tmp': `rw,nosuid,nodev,size=${testLimits.tmpfsMb}m` });
    expect(info.State.Running).toBe(true);

    const binds = info.Mounts.filter((mount) => mount.Type === 'bind');
    expect(binds.map((mount) => [mount.Source, mount.Destination, mount.RW])).toEqual([
      [join(workspaceDir, 'in'), '/workspace/in', false],
    ]);
    // /workspace/out is a volume of its own (memory-backed, size-capped), not a host directory.
    const volumes = info.Mounts.filter((mount) => mount.Type === 'volume');
    expect(volumes.map((mount) => [mount.Destination, mount.RW])).toEqual([['/workspace/out', true]]);
    expect(JSON.stringify(info.Mounts)).not.toMatch(/docker\.sock/);
    expect(JSON.stringify(host.Binds)).not.toMatch(/docker\.sock/);

    // Only the image's own environment plus HOME and LANG: nothing from the runner's process.
    const image = await fx.docker.getImage(sandboxImage).inspect();
    const allowed = new Set([...(image.Config.Env ?? []).map((entry) => entry.split('=')[0]), 'HOME', 'LANG']);
    const names = info.Config.Env.map((entry) => entry.split('=')[0]);
    expect(names.filter((name) => !allowed.has(name))).toEqual([]);
    expect(info.Config.Env).toContain('HOME=/home/sandbox');
    const env = await sh(sandbox, 'env');
    expect(env.stdout).not.toContain(secret);
    expect(env.stdout).not.toMatch(/ANTHROPIC|SLACK|DOCKER_HOST|REDIS/);
  });

  it('behaves hardened from the inside', async () => {
    const { sandbox, workspaceDir } = await fx.sandbox();
    await writeFile(join(workspaceDir, 'in', 'input.txt'), 'from the user\n');

    expect((await sh(sandbox, 'id -u; id -g')).stdout).toBe('1000\n1000\n');

    // Kernel view of the process: no capabilities, no-new-privs, seccomp filter mode.
    const status = (await sh(sandbox, 'cat /proc/self/status')).stdout;
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    expect(status).toMatch(/^CapBnd:\s+0+$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m);

    const etc = await sh(sandbox, 'echo x > /etc/handoff-test');
    expect(etc.exitCode).not.toBe(0);
    expect(etc.stderr).toMatch(/Read-only file system/);

    const input = await sh(sandbox, 'cat /workspace/in/input.txt && echo x > /workspace/in/new.txt');
    expect(input.stdout).toBe('from the user\n');
    expect(input.exitCode).not.toBe(0);
    expect(input.stderr).toMatch(/Read-only file system/);

    const out = await sh(sandbox, 'echo deliverable > /workspace/out/report.txt');
    expect(out.exitCode).toBe(0);
    expect((await readAll((await sandbox.readFileStream('/workspace/out/report.txt')).stream)).toString()).toBe(
      'deliverable\n',
    );

    const tmp = await sh(sandbox, 'echo scratch > /tmp/a && cat /tmp/a && df -k /tmp | tail -1');
    expect(tmp.exitCode).toBe(0);
    expect(tmp.stdout).toMatch(/^scratch\ntmpfs\s+65536\s/);

    const sudo = await sh(sandbox, 'cat /etc/shadow');
    expect(sudo.exitCode).not.toBe(0);
  });

  it('mounts the whole workspace read-only for a read-only sandbox', async () => {
    const { sandbox } = await fx.sandbox({ readOnlyWorkspace: true });
    const result = await sh(sandbox, 'echo x > /workspace/out/a.txt');
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/Read-only file system/);
  });

  it('has no network: loopback connections and name lookups fail', async () => {
    const { sandbox } = await fx.sandbox();
    const http = await sandbox.exec(
      ['python3', '-c', "import urllib.request; urllib.request.urlopen('http://127.0.0.1:1', timeout=3)"],
      { timeoutMs: 15_000 },
    );
    expect(http.exitCode).not.toBe(0);
    expect(http.stderr).toMatch(/URLError|Connection refused/);

    const dns = await sandbox.exec(['getent', 'hosts', 'deb.debian.org'], { timeoutMs: 15_000 });
    expect(dns.exitCode).not.toBe(0);
    expect(dns.stdout).toBe('');

    const interfaces = await sh(sandbox, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    expect(interfaces.stdout).toBe('lo\n');
  });

  it('aborting a running command kills and removes the sandbox', async () => {
    const { sandbox } = await fx.sandbox();
    const controller = new AbortController();
    const started = Date.now();
    const pending = sandbox.exec(['sleep', '600'], { timeoutMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    await expect(pending).rejects.toMatchObject({ name: 'HandoffError', code: ErrorCodes.cancelled });
    expect(Date.now() - started).toBeLessThan(10_000);
    await expectGone(fx.docker, sandbox.id);
    await sandbox.destroy(); // idempotent
  });

  it('passes a HandoffError abort reason through (run timeout)', async () => {
    const { sandbox } = await fx.sandbox();
    const reason = new HandoffError(ErrorCodes.runTimeout, 'The run took longer than its limit');
    const controller = new AbortController();
    const pending = sandbox.exec(['sleep', '600'], { timeoutMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(reason), 300);
    await expect(pending).rejects.toBe(reason);
    await expectGone(fx.docker, sandbox.id);
  });

  it('refuses to start work with an already aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    const workspaceDir = await fx.workspace();
    await expect(
      fx.driver.create(
        { taskId: 't', label: 'never', workspaceDir, readOnlyWorkspace: false, limits: testLimits },
        controller.signal,
      ),
    ).rejects.toMatchObject({ code: ErrorCodes.cancelled });
  });

  it('streams a file out of the sandbox byte-exact and refuses symlinks and directories', async () => {
    const { sandbox } = await fx.sandbox();
    const write = await sh(
      sandbox,
      'head -c 300000 /dev/urandom > /workspace/out/data.bin && base64 -w0 /workspace/out/data.bin',
      {
        maxOutputBytes: 1024 * 1024,
      },
    );
    expect(write.exitCode).toBe(0);
    const expected = Buffer.from(write.stdout, 'base64');

    const { stream, size } = await sandbox.readFileStream('/workspace/out/data.bin');
    expect(size).toBe(300_000);
    const actual = await readAll(stream);
    expect(createHash('sha256').update(actual).digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));

    const relative = await sandbox.readFileStream('out/data.bin');
    expect((await readAll(relative.stream)).equals(expected)).toBe(true);

    await sh(
      sandbox,
      'ln -s /etc/passwd /workspace/out/x && ln -s /etc /workspace/out/etc && mkdir /workspace/out/dir',
    );
    await expect(sandbox.readFileStream('/workspace/out/x')).rejects.toMatchObject({ code: ErrorCodes.invalidInput });
    await expect(sandbox.readFileStream('/workspace/out/dir')).rejects.toMatchObject({ code: ErrorCodes.invalidInput });
    await expect(sandbox.readFileStream('/workspace/out/missing.txt')).rejects.toMatchObject({
      code: ErrorCodes.notFound,
    });

    // A symlinked directory resolves inside the container, never to the host's files.
    const viaLink = await sandbox.readFileStream('/workspace/out/etc/passwd');
    expect((await readAll(viaLink.stream)).toString('utf8')).toMatch(/^sandbox:x:1000:1000:/m);
  });

  it('keeps head and tail of long output, streams all of it, and separates stderr', async () => {
    const { sandbox } = await fx.sandbox();
    let streamed = 0;
    const result = await sh(
      sandbox,
      "echo START; head -c 200000 /dev/zero | tr '\\0' a; echo; echo END; echo oops >&2",
      {
        maxOutputBytes: 1000,
        onOutput: (chunk) => {
          streamed += Buffer.byteLength(chunk);
        },
      },
    );
    expect(result.exitCode).toBe(0);
    expect(result.truncated).toBe(true);
    expect(result.stdout.startsWith('START\naaa')).toBe(true);
    expect(result.stdout.endsWith('aaa\nEND\n')).toBe(true);
    expect(result.stdout).toContain(`\n…[${200_000 + 11 - 1000} bytes omitted]…\n`);
    expect(result.stderr).toBe('oops\n');
    expect(streamed).toBe(200_000 + 11 + 5);
  });

  it('re-attaches to a running sandbox and ignores other containers', async () => {
    const { sandbox } = await fx.sandbox();
    const attached = await fx.driver.attach(sandbox.id);
    expect(attached?.id).toBe(sandbox.id);
    expect((await attached!.exec(['echo', 'again'], { timeoutMs: 5000 })).stdout).toBe('again\n');
    expect(await fx.driver.attach('0123456789ab-no-such-container')).toBeUndefined();
    await sandbox.destroy();
    expect(await fx.driver.attach(sandbox.id)).toBeUndefined();
  });

  it('pings the engine and finds the image', async () => {
    await expect(fx.driver.ping()).resolves.toBeUndefined();
    expect(await fx.driver.imagePresent()).toBe(true);
  });

  it('says the engine is unreachable (retryable) for a bogus socket', async () => {
    const driver = new DockerSandboxDriver({
      image: sandboxImage,
      docker: new Dockerode({ socketPath: '/nonexistent.sock' }),
      sandboxUser,
    });
    const error = await driver.ping().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(HandoffError);
    expect(error).toMatchObject({ code: ErrorCodes.sandboxUnavailable, retryable: true });
    expect((error as Error).message).toMatch(/^Docker is not reachable/);

    const workspaceDir = await fx.workspace();
    await expect(
      driver.create({ taskId: 't', label: 'down', workspaceDir, readOnlyWorkspace: false, limits: testLimits }),
    ).rejects.toMatchObject({ code: ErrorCodes.sandboxUnavailable, retryable: true });
  });

  it('tells to build the image when it is missing (not retryable)', async () => {
    const driver = new DockerSandboxDriver({ image: 'handoff-sandbox:does-not-exist', docker: fx.docker, sandboxUser });
    expect(await driver.imagePresent()).toBe(false);
    const workspaceDir = await fx.workspace();
    const error = await driver
      .create({ taskId: 't', label: 'no-image', workspaceDir, readOnlyWorkspace: false, limits: testLimits })
      .catch((err: unknown) => err);
    expect(error).toMatchObject({ code: ErrorCodes.sandboxUnavailable, retryable: false });
    expect((error as Error).message).toContain('npm run sandbox:build');
  });

  it('caps what a run can write to /workspace/out, with a clear error when it is full', async () => {
    const { sandbox } = await fx.sandbox({ limits: { ...testLimits, outputMb: 8 } });
    const full = await sh(
      sandbox,
      'head -c 12000000 /dev/zero > /workspace/out/big.bin; echo rc=$?; df -k /workspace/out | tail -1',
    );
    expect(full.stderr).toMatch(/No space left on device/);
    expect(full.stdout).toMatch(/rc=1/);
    expect(full.stdout).toMatch(/\s8192\s/);
  });

  it('lets the sandbox write only where docs/security.md says: /workspace/out, /tmp, /dev/shm, /dev/mqueue', async () => {
    const { sandbox } = await fx.sandbox();
    // Every directory the sandbox user may write in (access(2) says no for read-only mounts), outside /proc and /sys.
    const probe = await sh(
      sandbox,
      'find / \\( -path /proc -o -path /sys \\) -prune -o -type d -writable -print 2>/dev/null | sort',
      { maxOutputBytes: 1024 * 1024, timeoutMs: 60_000 },
    );
    const writable = probe.stdout.split('\n').filter(Boolean);
    const allowed = (d: string) => /^\/(workspace\/out|tmp|dev\/shm|dev\/mqueue)(\/|$)/.test(d);
    expect(writable.filter((d) => !allowed(d))).toEqual([]);
    expect(writable).toEqual(expect.arrayContaining(['/workspace/out', '/tmp', '/dev/shm']));
  });

  it('lists and restores /workspace/out (owned by the sandbox user, with subdirectories)', async () => {
    const { sandbox } = await fx.sandbox();
    await sh(
      sandbox,
      'mkdir -p /workspace/out/charts && printf a > /workspace/out/a.txt && printf bb > "/workspace/out/charts/b c.png"',
    );
    const listed = (await sandbox.listOutputs()).sort((x, y) => x.path.localeCompare(y.path));
    expect(listed.map((f) => [f.path, f.size])).toEqual([
      ['a.txt', 1],
      ['charts/b c.png', 2],
    ]);
    expect(listed[0]!.mtime).toMatch(/^\d+(\.\d+)?$/);

    const { sandbox: fresh } = await fx.sandbox();
    const { Readable } = await import('node:stream');
    await fresh.writeOutputs([
      { path: 'a.txt', size: 1, open: async () => Readable.from([Buffer.from('a')]) },
      { path: 'charts/b c.png', size: 2, open: async () => Readable.from([Buffer.from('bb')]) },
    ]);
    const check = await sh(
      fresh,
      'stat -c "%U %n" /workspace/out/a.txt /workspace/out/charts "/workspace/out/charts/b c.png"; echo more >> /workspace/out/charts/new.txt && cat /workspace/out/a.txt',
    );
    expect(check.exitCode).toBe(0);
    expect(check.stdout).toBe(
      'sandbox /workspace/out/a.txt\nsandbox /workspace/out/charts\nsandbox /workspace/out/charts/b c.png\na',
    );
  });

  it('suspends a sandbox and re-attaches it with /tmp and /workspace/out as they were', async () => {
    const { sandbox } = await fx.sandbox();
    await sh(sandbox, 'echo scratch > /tmp/work.txt && echo made > /workspace/out/made.txt');
    await sandbox.suspend();
    const frozen = await fx.docker.getContainer(sandbox.id).inspect();
    expect(frozen.State.Paused).toBe(true);
    expect((await fx.driver.list()).find((b) => b.id === sandbox.id)?.state).toBe('paused');

    const again = await fx.driver.attach(sandbox.id);
    expect(again).toBeDefined();
    const read = await sh(again!, 'cat /tmp/work.txt /workspace/out/made.txt');
    expect(read.stdout).toBe('scratch\nmade\n');

    await fx.driver.remove(sandbox.id);
    expect(await fx.driver.attach(sandbox.id)).toBeUndefined();
    expect((await fx.driver.list()).some((b) => b.id === sandbox.id)).toBe(false);
  });
});

// What depends on how a command is run: under the image's exec helper, and under the shell
// wrapper an image without it gets.
for (const wrapper of execWrappers) {
  describeDocker(`DockerSandboxDriver commands under the ${wrapperName(wrapper)} (real Docker)`, () => {
    const fx = useSandboxFixture({ wrapper });

    it('runs the command under that wrapper, in a sandbox it made or re-attached', async () => {
      const { sandbox } = await fx.sandbox();
      // The command's parent: the helper itself, or coreutils timeout under the shell wrapper.
      const parent = (box: Sandbox) => sh(box, 'tr "\\0" " " < /proc/$PPID/cmdline');
      const expected = wrapper === 'helper' ? /^\/usr\/local\/libexec\/handoff-exec / : /^timeout /;
      expect((await parent(sandbox)).stdout).toMatch(expected);
      // A runner restarted with a new driver learns the wrapper from the container's labels.
      const again = await new DockerSandboxDriver({
        image: 'no-such-image:never',
        docker: fx.docker,
        sandboxUser,
      }).attach(sandbox.id);
      expect((await parent(again!)).stdout).toMatch(expected);
    });

    it.runIf(wrapper === 'helper')('keeps the helper, which holds the nonce, out of reach of the command', async () => {
      const { sandbox } = await fx.sandbox();
      // The same user, but the helper is not dumpable: its memory and environment are closed.
      const peek = await sh(sandbox, `python3 -c "open('/proc/$PPID/mem', 'rb')" 2>&1; cat /proc/$PPID/environ 2>&1`);
      expect(peek.stdout).toMatch(/PermissionError/);
      expect(peek.stdout).toMatch(/environ: Permission denied/);
    });

    it('kills a command that never ends at its time limit', async () => {
      const { sandbox } = await fx.sandbox();
      const started = Date.now();
      const result = await sandbox.exec(['sleep', '600'], { timeoutMs: 2000 });
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).toBe(124);
      expect(result.oomKilled).toBe(false);
      expect(Date.now() - started).toBeLessThan(8000);
      // The sandbox is still usable afterwards.
      expect((await sandbox.exec(['echo', 'ok'], { timeoutMs: 5000 })).stdout).toBe('ok\n');
    });

    it('escalates to KILL when a command ignores SIGTERM', async () => {
      const { sandbox } = await fx.sandbox();
      const result = await sh(sandbox, "trap '' TERM; while :; do sleep 0.2; done", { timeoutMs: 1500 });
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).toBe(137);
      expect(result.durationMs).toBeLessThan(8000);
    });

    it('holds the pids limit against a fork bomb and stays usable', async () => {
      const { sandbox } = await fx.sandbox();
      const pidsEvents = 'cat /sys/fs/cgroup/pids.events 2>/dev/null || cat /sys/fs/cgroup/pids/pids.events';
      const before = Number(/max (\d+)/.exec((await sh(sandbox, pidsEvents)).stdout)?.[1]);

      const python = await sandbox.exec(['python3', '-c', 'import os\nwhile True:\n    os.fork()'], {
        timeoutMs: 10_000,
      });
      expect(python.exitCode).not.toBe(0);
      expect(python.stderr).toMatch(/Resource temporarily unavailable/);

      const bash = await sh(sandbox, ':(){ :|:& };:; sleep 2', { timeoutMs: 10_000 });
      expect(bash.stderr).toMatch(/fork: .*Resource temporarily unavailable/);

      const after = Number(/max (\d+)/.exec((await sh(sandbox, pidsEvents)).stdout)?.[1]);
      expect(after).toBeGreaterThan(before);
      // The bomb's leftovers were killed with its process group: the same sandbox still answers.
      expect((await sandbox.exec(['echo', 'ok'], { timeoutMs: 5000 })).stdout).toBe('ok\n');
      const current = await sh(
        sandbox,
        'cat /sys/fs/cgroup/pids.current 2>/dev/null || cat /sys/fs/cgroup/pids/pids.current',
      );
      expect(Number(current.stdout)).toBeLessThan(10);
    });

    it('reports a command the kernel killed for exceeding the memory limit', async () => {
      const { sandbox } = await fx.sandbox();
      const hog = 'chunks = [b"x" * (64 << 20) for _ in range(32)]  # 2 GiB against a 256 MiB limit';
      const result = await sandbox.exec(['python3', '-c', hog], { timeoutMs: 30_000 });
      expect(result.oomKilled).toBe(true);
      expect(result.exitCode).toBe(137);
      expect(result.timedOut).toBe(false);

      const next = await sandbox.exec(['echo', 'ok'], { timeoutMs: 5000 });
      expect(next.stdout).toBe('ok\n');
      expect(next.oomKilled).toBe(false);
    });

    it('feeds stdin to the command', async () => {
      const { sandbox } = await fx.sandbox();
      const text = 'héllo\nwörld\n';
      const result = await sh(sandbox, 'cat > /workspace/out/f.txt', { stdin: text });
      expect(result.exitCode).toBe(0);
      expect((await readAll((await sandbox.readFileStream('/workspace/out/f.txt')).stream)).toString('utf8')).toBe(
        text,
      );

      const big = Buffer.alloc(3 * MiB, 7);
      const hashed = await sandbox.exec(['sha256sum'], { timeoutMs: 20_000, stdin: big });
      expect(hashed.stdout.split(' ')[0]).toBe(createHash('sha256').update(big).digest('hex'));
    });

    it('reports exit codes, cwd and missing commands', async () => {
      const { sandbox } = await fx.sandbox();
      expect((await sh(sandbox, 'exit 3')).exitCode).toBe(3);
      expect((await sandbox.exec(['pwd'], { timeoutMs: 5000, cwd: '/workspace/out' })).stdout).toBe('/workspace/out\n');
      expect((await sandbox.exec(['no-such-command'], { timeoutMs: 5000 })).exitCode).toBe(127);
    });
  });
}
