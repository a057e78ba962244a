// The OOM kill of a command is read inside the command's own exec (no extra exec) and cannot be
// faked or hidden by what the command prints.
import { createRequire } from 'node:module';
import { expect, it, vi } from 'vitest';
import type { Sandbox } from '../../src/runner/sandbox/index.ts';
import { describeDocker, execWrappers, useSandboxFixture, wrapperName } from '../helpers/docker.ts';

const hog = 'python3 -c \'chunks = [b"x" * (64 << 20) for _ in range(32)]\'';
/**
 * Prints forged OOM lines on stdout and stderr: one with a made-up nonce, and one for every
 * 32-hex-digit string any process in the sandbox shows in its argv or environment (where a
 * nonce passed as an argument or variable would be found). `$1` and `$2` are the counters; each
 * line also claims exit status 0.
 */
const forge = `
  { for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; done
    echo 0123456789abcdef0123456789abcdef; } | grep -oE '[0-9a-f]{32}' | sort -u > /tmp/nonces
  while read -r n; do
    printf '\\036handoff-oom %s %s %s 0 \\n' "$n" "$1" "$2"
    printf '\\036handoff-oom %s %s %s 0 \\n' "$n" "$1" "$2" >&2
  done < /tmp/nonces
  wc -l < /tmp/nonces > /tmp/forged`;

/** dockerode's Exec, whose `inspect` is the engine call for an exec's exit status. */
const Exec = createRequire(import.meta.url)('dockerode/lib/exec.js') as { prototype: { inspect: () => unknown } };

function bash(sandbox: Sandbox, script: string, args: string[], onOutput?: (text: string) => void) {
  return sandbox.exec(['bash', '-c', script, 'bash', ...args], {
    timeoutMs: 30_000,
    ...(onOutput ? { onOutput } : {}),
  });
}

for (const wrapper of execWrappers) {
  describeDocker(`sandbox OOM report under the ${wrapperName(wrapper)} (real Docker)`, () => {
    const fx = useSandboxFixture({ wrapper });

    it('a command that prints fake readings is not reported as OOM-killed, nor with their status', async () => {
      const { sandbox } = await fx.sandbox();
      const live: string[] = [];
      const result = await bash(sandbox, `${forge}; exit 3`, ['0', '7'], (text) => live.push(text));
      const fake = '\x1ehandoff-oom 0123456789abcdef0123456789abcdef 0 7 0 \n';
      expect(result.exitCode).toBe(3);
      expect(result.oomKilled).toBe(false);
      // The forged lines are the command's own output and reach the caller untouched.
      expect(result.stderr).toContain(fake);
      expect(result.stdout).toContain(fake);
      expect(live.join('')).toContain(fake);
      const forged = await sandbox.exec(['cat', '/tmp/forged'], { timeoutMs: 5000 });
      expect(Number(forged.stdout)).toBeGreaterThanOrEqual(1);
    });

    it('a command that is OOM-killed and then prints "no OOM" readings is still reported', async () => {
      const { sandbox } = await fx.sandbox();
      const result = await bash(sandbox, `${hog}; echo "hog exit $?"; ${forge}`, ['0', '0']);
      expect(result.stdout).toMatch(/hog exit 137/);
      expect(result.oomKilled).toBe(true);
      const next = await sandbox.exec(['echo', 'ok'], { timeoutMs: 5000 });
      expect(next.oomKilled).toBe(false);
    });

    it("leaves no trace of the reading in a command's output, and stdin still reaches it", async () => {
      const { sandbox } = await fx.sandbox();
      const live: string[] = [];
      const result = await sandbox.exec(['sh', '-c', 'cat; echo err >&2'], {
        timeoutMs: 5000,
        stdin: 'hello\nworld',
        onOutput: (text) => live.push(text),
      });
      expect(result).toMatchObject({ exitCode: 0, stdout: 'hello\nworld', stderr: 'err\n', oomKilled: false });
      expect(live.join('')).not.toMatch(/handoff-oom/);
      const noStdin = await sandbox.exec(['sh', '-c', 'wc -c'], { timeoutMs: 5000 });
      expect(noStdin.stdout.trim()).toBe('0');
    });

    it('takes the exit status from the wrapper, and asks the engine only when the wrapper died', async () => {
      const { sandbox } = await fx.sandbox();
      const inspect = vi.spyOn(Exec.prototype, 'inspect');
      try {
        for (const code of [0, 1, 3, 255]) {
          const result = await bash(sandbox, `echo out; exit ${code}`, []);
          expect(result).toMatchObject({ exitCode: code, stdout: 'out\n', stderr: '' });
        }
        expect(inspect).not.toHaveBeenCalled();
        // The command kills the wrapper (the exec's first process, whose parent is outside the
        // container): no reading, so the engine says 137.
        const killed = await bash(
          sandbox,
          'p=$PPID; while q=$(cut -d" " -f4 /proc/$p/stat); [ "$q" != 0 ]; do p=$q; done; kill -9 "$p"; sleep 1',
          [],
        );
        expect(killed.exitCode).toBe(137);
        expect(inspect).toHaveBeenCalled();
      } finally {
        inspect.mockRestore();
      }
    });
  });
}
