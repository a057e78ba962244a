// Runs a Node script (argv[2], with its own arguments after it) under the inspector's CPU
// profiler, switched by SIGUSR2: the first SIGUSR2 starts recording, the second stops and
// writes `<BENCH_PROFILE_DIR>/<pid>-<time>.cpuprofile` (Chrome DevTools format). So a
// benchmark profiles one phase of a long-running process, not its start-up.
//
//   BENCH_PROFILE_DIR=/tmp/x node --import tsx bench/lib/profiled.ts bin/handoff.js bot
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const script = process.argv[2];
if (!script) {
  console.error('usage: profiled.ts <script> [args…]');
  process.exit(2);
}
const dir = process.env.BENCH_PROFILE_DIR ?? process.cwd();
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 500 });
let recording = false;
process.on('SIGUSR2', () => {
  void (async () => {
    if (!recording) {
      recording = true;
      await session.post('Profiler.start');
      return;
    }
    recording = false;
    const { profile } = await session.post('Profiler.stop');
    await writeFile(join(dir, `${process.pid}-${Date.now()}.cpuprofile`), JSON.stringify(profile));
  })().catch((err: unknown) => console.error(`profiled: ${(err as Error).message}`));
});
// The script sees the arguments it would see when run directly.
process.argv.splice(1, 2, resolve(script));
await import(pathToFileURL(resolve(script)).href);
