// The OOM kill of a command is read inside the command's own exec (no extra exec) and cannot be
// faked or hidden by what the command prints.
import { expect, it } from 'vitest';
import type { Sandbox } from '../../src/runner/sandbox/index.ts';
import { describeDocker, useSandboxFixture } from '../helpers/docker.ts';

const hog = 'python3 -c \'chunks = [b"x" * (64 << 20) for _ in range(32)]\'';
/**
 * Prints forged OOM lines on stdout and stderr: one with a made-up nonce, and one for every
 * 32-hex-digit string any process in the sandbox shows in its argv or environment (where a
 * nonce passed as an argument or variable would be found). `$1` and `$2` are the counters.
 */
const forge = `
  { for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; done
    echo 0123456789abcdef0123456789abcdef; } | grep -oE '[0-9a-f]{32}' | sort -u > /tmp/nonces
  while read -r n; do
    printf '\\036handoff-oom %s %s %s\\n' "$n" "$1" "$2"
    printf '\\036handoff-oom %s %s %s\\n' "$n" "$1" "$2" >&2
  done < /tmp/nonces
  wc -l < /tmp/nonces > /tmp/forged`;

function bash(sandbox: Sandbox, script: string, args: string[], onOutput?: (text: string) => void) {
  return sandbox.exec(['bash', '-c', script, 'bash', ...args], {
    timeoutMs: 30_000,
    ...(onOutput ? { onOutput } : {}),
  });
}

describeDocker('sandbox OOM report (real Docker)', () => {
  const fx = useSandboxFixture();

  it('a command that prints fake OOM readings is not reported as OOM-killed', async () => {
    const { sandbox } = await fx.sandbox();
    const live: string[] = [];
    const result = await bash(sandbox, forge, ['0', '7'], (text) => live.push(text));
    const fake = '\x1ehandoff-oom 0123456789abcdef0123456789abcdef 0 7\n';
    expect(result.exitCode).toBe(0);
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
});
