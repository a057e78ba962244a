import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CpuProfile, formatCpuProfileSummary, summariseCpuProfiles } from '../../../bench/lib/cpu-profile.ts';

// A profile as `node --cpu-prof` writes it: five samples; each stands for the gap after it.
const frame = (functionName: string, url = '', lineNumber = -1) => ({ functionName, url, lineNumber });
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)') },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('plan', 'file:///app/src/runner/plan-processor.ts', 9) },
    { id: 4, callFrame: frame('', 'file:///app/node_modules/bullmq/dist/esm/classes/worker.js', 0) },
    { id: 5, callFrame: frame('(garbage collector)') },
  ],
  startTime: 1000,
  samples: [3, 3, 4, 2, 5],
  timeDeltas: [10, 100, 100, 200, 300],
  endTime: 1760,
};

describe('cpu profile summary', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('sums self time per function and per place, as shares of the busy time', () => {
    const s = summariseCpuProfiles([profile]);
    expect(s.busyMs).toBeCloseTo(0.45);
    expect(s.idleMs).toBeCloseTo(0.3);
    expect(s.functions.map((r) => [r.key, Math.round(r.selfMs * 1000)])).toEqual([
      ['plan src/runner/plan-processor.ts:10', 200],
      ['(anonymous) node_modules/bullmq/dist/esm/classes/worker.js:1', 200],
      ['(garbage collector)', 50],
    ]);
    expect(s.functions[0]!.percent).toBeCloseTo(44.44, 1);
    expect(s.places.map((r) => r.key)).toEqual(['src/runner', 'bullmq', '(garbage collector)']);
  });

  it('counts only the samples taken within a window', () => {
    const s = summariseCpuProfiles([profile, profile], { fromUs: 1100, toUs: 1500 });
    expect(s.wallMs).toBeCloseTo(0.8);
    expect(s.functions.map((r) => [r.key, Math.round(r.selfMs * 1000)])).toEqual([
      ['(anonymous) node_modules/bullmq/dist/esm/classes/worker.js:1', 400],
      ['plan src/runner/plan-processor.ts:10', 200],
    ]);
  });

  it('prints the top functions of the files or directories named on the command line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-cpuprofile-'));
    dirs.push(dir);
    await writeFile(join(dir, 'a.cpuprofile'), JSON.stringify(profile));
    await writeFile(join(dir, 'b.cpuprofile'), JSON.stringify(profile));
    const cli = new URL('../../../bench/lib/cpu-profile.ts', import.meta.url).pathname;
    const r = spawnSync(process.execPath, ['--import', 'tsx', cli, dir, '--top', '1'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${formatCpuProfileSummary(summariseCpuProfiles([profile, profile]), 1)}\n`);
    expect(r.stdout).toContain('44.4 %        0 ms  plan src/runner/plan-processor.ts:10');
    expect(r.stdout).toContain('(sum over 2 profiles)');
    expect(r.stdout).not.toContain('bullmq/dist');
  });
});
