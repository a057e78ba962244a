// Summarises V8 CPU profiles (`node --cpu-prof` writes one .cpuprofile per process at exit):
// self time per function (name + url:line) and per place in the code (a package under
// node_modules, a folder of src/, Node's internals, GC), from `samples` and `timeDeltas`.
//
//   node --import tsx bench/lib/cpu-profile.ts <file.cpuprofile|dir>... [--top 10]
//
// Several files (or a directory of them) are summed into one summary. Percentages are of
// the busy time: every sample except `(idle)`.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The parts of a .cpuprofile (Chrome DevTools Protocol `Profiler.Profile`) this reads. */
export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  }>;
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTimeRow {
  /** `name url:line` (line 1-based), or a V8 pseudo-frame such as `(garbage collector)`. */
  key: string;
  selfMs: number;
  /** Share of the busy time (all samples but `(idle)`), 0–100. */
  percent: number;
}

export interface CpuProfileSummary {
  /** How many profiles were summed (`--cpu-prof` writes one per thread, e.g. tsx's loader thread). */
  profiles: number;
  /** Profiled wall time (sum over profiles), ms. */
  wallMs: number;
  /** Time not in `(idle)`, ms. */
  busyMs: number;
  /** Time in `(idle)` (waiting for I/O or timers), ms. */
  idleMs: number;
  /** Self time per function, largest first. */
  functions: SelfTimeRow[];
  /** Self time per place in the code (package, src folder, node internals, GC…), largest first. */
  places: SelfTimeRow[];
}

const pseudo = /^\((idle|program|garbage collector|root)\)$/;

function frameKey(frame: CpuProfile['nodes'][number]['callFrame']): string {
  const name = frame.functionName || '(anonymous)';
  if (pseudo.test(name) || !frame.url) return name;
  return `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

/** A url as a person reads it: from node_modules/ or src/ on, node:internal as is. */
function shortUrl(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + 1);
  const src = path.indexOf('/src/');
  if (src >= 0) return path.slice(src + 1);
  return path;
}

/** Where a frame's code lives: `bullmq`, `src/runner`, `node internals`, `(garbage collector)`… */
function placeOf(frame: CpuProfile['nodes'][number]['callFrame']): string {
  const name = frame.functionName;
  if (pseudo.test(name)) return name;
  const url = frame.url.replace(/^file:\/\//, '');
  if (!url) return '(native / V8 builtins)';
  if (url.startsWith('node:')) return 'node internals';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const src = /\/src\/([^/]+)\//.exec(url);
  if (src) return `src/${src[1]}`;
  if (/\/src\/[^/]+$/.test(url)) return 'src';
  return shortUrl(url);
}

/** Adds one profile's self time per function and per place into `byKey` / `byPlace` (µs). */
function accumulate(
  profile: CpuProfile,
  byKey: Map<string, number>,
  byPlace: Map<string, number>,
  window: ProfileWindow,
): { wallUs: number; idleUs: number } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the gap before sample i; the time a sample stands for is the gap after
  // it (as DevTools counts), the last one up to endTime.
  let at = profile.startTime;
  const stamps = deltas.map((d) => {
    at += d;
    return at;
  });
  let idleUs = 0;
  for (let i = 0; i < samples.length; i++) {
    const duration = i + 1 < samples.length ? stamps[i + 1]! - stamps[i]! : profile.endTime - (stamps[i] ?? at);
    if (duration <= 0) continue;
    const stamp = stamps[i] ?? at;
    if (stamp < window.fromUs || stamp >= window.toUs) continue;
    const frame = nodes.get(samples[i]!);
    if (!frame) continue;
    if (frame.functionName === '(idle)') {
      idleUs += duration;
      continue;
    }
    const key = frameKey(frame);
    byKey.set(key, (byKey.get(key) ?? 0) + duration);
    const place = placeOf(frame);
    byPlace.set(place, (byPlace.get(place) ?? 0) + duration);
  }
  const wallUs = Math.min(profile.endTime, window.toUs) - Math.max(profile.startTime, window.fromUs);
  return { wallUs: Math.max(0, wallUs), idleUs };
}

/**
 * A span of the profiled process's life, in the profile's clock: microseconds of the monotonic
 * clock (CLOCK_MONOTONIC on Linux), the same as `process.hrtime.bigint() / 1000n` in any
 * process on the machine, so a benchmark can mark the span it measured.
 */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

/** Sums self time over one or more profiles of the same program, optionally only within `window`. */
export function summariseCpuProfiles(
  profiles: CpuProfile[],
  window: ProfileWindow = { fromUs: Number.NEGATIVE_INFINITY, toUs: Number.POSITIVE_INFINITY },
): CpuProfileSummary {
  const byKey = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let wallUs = 0;
  let idleUs = 0;
  for (const p of profiles) {
    const r = accumulate(p, byKey, byPlace, window);
    wallUs += r.wallUs;
    idleUs += r.idleUs;
  }
  const busyUs = [...byKey.values()].reduce((a, b) => a + b, 0);
  const rows = (m: Map<string, number>): SelfTimeRow[] =>
    [...m.entries()]
      .map(([key, us]) => ({ key, selfMs: us / 1000, percent: busyUs > 0 ? (us / busyUs) * 100 : 0 }))
      .sort((a, b) => b.selfMs - a.selfMs);
  return {
    profiles: profiles.length,
    wallMs: wallUs / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    functions: rows(byKey),
    places: rows(byPlace),
  };
}

/** Reads .cpuprofile files; a directory stands for every .cpuprofile directly in it. */
export async function readCpuProfiles(paths: string[]): Promise<CpuProfile[]> {
  const files: string[] = [];
  for (const p of paths) {
    if ((await stat(p)).isDirectory()) {
      for (const f of (await readdir(p)).filter((n) => n.endsWith('.cpuprofile')).sort()) files.push(join(p, f));
    } else files.push(p);
  }
  if (files.length === 0) throw new Error(`no .cpuprofile files in ${paths.join(', ')}`);
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as CpuProfile));
}

/** The summary as text: busy time, the top `top` functions by self time, and where the time goes. */
export function formatCpuProfileSummary(summary: CpuProfileSummary, top = 10): string {
  const line = (r: SelfTimeRow) =>
    `  ${r.percent.toFixed(1).padStart(5)} %  ${r.selfMs.toFixed(0).padStart(7)} ms  ${r.key}`;
  return [
    `profiled ${(summary.wallMs / 1000).toFixed(1)} s${summary.profiles > 1 ? ` (sum over ${summary.profiles} profiles)` : ''}, busy (not idle) ${(summary.busyMs / 1000).toFixed(1)} s; shares are of the busy time`,
    `top ${top} functions by self time:`,
    ...summary.functions.slice(0, top).map(line),
    'self time by place in the code:',
    ...summary.places.slice(0, top).map(line),
  ].join('\n');
}

async function cli(args: string[]): Promise<void> {
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 10;
  const paths = args.filter((_, i) => topAt < 0 || (i !== topAt && i !== topAt + 1));
  if (paths.length === 0 || !Number.isInteger(top) || top < 1) {
    console.error('usage: node --import tsx bench/lib/cpu-profile.ts <file.cpuprofile|dir>... [--top 10]');
    process.exitCode = 2;
    return;
  }
  console.log(formatCpuProfileSummary(summariseCpuProfiles(await readCpuProfiles(paths)), top));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await cli(process.argv.slice(2));
}
