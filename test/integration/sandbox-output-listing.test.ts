import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { expect, it } from 'vitest';
import type { Sandbox } from '../../src/runner/sandbox/index.ts';
import { describeDocker, execWrappers, useSandboxFixture, wrapperName } from '../helpers/docker.ts';

function sh(sandbox: Sandbox, script: string) {
  return sandbox.exec(['bash', '-c', script], { timeoutMs: 20_000 });
}

/** `find` execs the engine started in a container while `fn` ran (docker events). */
async function findExecsDuring(docker: Dockerode, id: string, fn: () => Promise<unknown>): Promise<number> {
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  await fn();
  const endedNs = BigInt(Date.now() + 1) * 1_000_000n;
  const stream = (await docker.getEvents({
    since: Math.floor(Date.now() / 1000) - 5,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { type: ['container'], container: [id], event: ['exec_create'] },
  })) as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { Action: string; timeNano: number })
    .filter((e) => BigInt(e.timeNano) >= startedNs && BigInt(e.timeNano) <= endedNs)
    .filter((e) => e.Action.includes('find /workspace/out')).length;
}

for (const wrapper of execWrappers) {
  describeDocker(`listing /workspace/out after commands under the ${wrapperName(wrapper)} (real Docker)`, () => {
    const fx = useSandboxFixture({ wrapper });

    it('answers from the last listing only while nothing under /workspace/out changed', async () => {
      const { sandbox } = await fx.sandbox();
      await sh(
        sandbox,
        'mkdir -p /workspace/out/sub && echo one > /workspace/out/a.txt && echo two > /workspace/out/sub/b.txt',
      );
      const first = await sandbox.listOutputs();
      expect(first.map((f) => f.path).sort()).toEqual(['a.txt', 'sub/b.txt']);

      // A command that writes nothing: the same listing, and no `find` exec for it.
      await sh(sandbox, 'true');
      let again: Awaited<ReturnType<Sandbox['listOutputs']>> = [];
      const finds = await findExecsDuring(fx.docker, sandbox.id, async () => {
        again = await sandbox.listOutputs();
      });
      expect(again).toEqual(first);
      expect(finds).toBe(0);

      // Same size, new content: the new mtime shows.
      await sh(sandbox, 'sleep 0.01; echo ONE > /workspace/out/a.txt');
      const changed = await sandbox.listOutputs();
      const a = (list: typeof first) => list.find((f) => f.path === 'a.txt')!;
      expect(a(changed).size).toBe(a(first).size);
      expect(a(changed).mtime).not.toBe(a(first).mtime);

      // Deleted and added files show.
      await sh(sandbox, 'rm /workspace/out/sub/b.txt; echo c > /workspace/out/c.txt');
      expect((await sandbox.listOutputs()).map((f) => f.path).sort()).toEqual(['a.txt', 'c.txt']);

      // Files restored through the archive API (no command ran) show too.
      await sandbox.writeOutputs([
        { path: 'restored.md', size: 3, open: async () => Readable.from([Buffer.from('hi\n')]) },
      ]);
      expect((await sandbox.listOutputs()).map((f) => f.path).sort()).toEqual(['a.txt', 'c.txt', 'restored.md']);

      // A command that fails to run still leaves a correct listing.
      await sh(sandbox, 'echo d > /workspace/out/d.txt; exit 3');
      expect((await sandbox.listOutputs()).map((f) => f.path).sort()).toEqual([
        'a.txt',
        'c.txt',
        'd.txt',
        'restored.md',
      ]);
    });
  });
}
