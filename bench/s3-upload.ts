// S3 artifact upload: a generated 1 GiB artifact streamed through S3ArtifactStore.put to the
// local S3 fake, which runs in a child process so the memory figures are the store's own.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { S3ArtifactStore } from '../src/storage/index.ts';

const MiB = 1024 * 1024;
const totalBytes = Number(process.env.BENCH_S3_BYTES ?? 1024 * MiB);
const partSizeBytes = Number(process.env.BENCH_S3_PART_BYTES ?? 8 * MiB);
const queueSize = Number(process.env.BENCH_S3_QUEUE ?? 4);
const chunkBytes = 256 * 1024;

/** Pseudo-random chunks made as they are read: never more than one chunk at a time from here. */
function generated(total: number): Readable {
  let sent = 0;
  return new Readable({
    highWaterMark: chunkBytes,
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(chunkBytes, total - sent);
      sent += size;
      this.push(randomFillSync(Buffer.allocUnsafe(size)));
    },
  });
}

const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-s3-'));
const serverScript = fileURLToPath(new URL('../test/fakes/s3-server.ts', import.meta.url));
const server = spawn(process.execPath, ['--import', 'tsx', serverScript, dir], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
try {
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: server.stdout });
    lines.once('line', resolve);
    server.once('exit', (code) => reject(new Error(`the S3 fake exited early (code ${code})`)));
  });
  const { url, accessKeyId, secretAccessKey } = JSON.parse(first) as Record<string, string>;
  process.env.AWS_ACCESS_KEY_ID = accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = secretAccessKey;
  const store = new S3ArtifactStore({ bucket: 'bench', endpoint: url, partSizeBytes, queueSize });

  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  let peakBuffers = process.memoryUsage().arrayBuffers;
  const sample = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakBuffers = Math.max(peakBuffers, m.arrayBuffers);
  };
  const sampler = setInterval(sample, 100);
  const started = performance.now();
  const result = await store.put('bench/artifact.bin', generated(totalBytes), {
    mediaType: 'application/octet-stream',
  });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  sample();

  const mib = (n: number) => (n / MiB).toFixed(1);
  console.log('server: local S3 fake in a child process (RSS below is the uploading process only)');
  console.log(
    `s3 upload: ${mib(result.size)} MiB in ${seconds.toFixed(2)} s = ${(result.size / MiB / seconds).toFixed(1)} MiB/s ` +
      `(part ${mib(partSizeBytes)} MiB × queue ${queueSize}, sha256 ${result.sha256.slice(0, 12)}…)`,
  );
  console.log(
    `s3 upload memory: RSS before ${mib(rssBefore)} MiB, peak ${mib(peakRss)} MiB, ` +
      `peak − before ${mib(peakRss - rssBefore)} MiB; peak Buffer memory ${mib(peakBuffers)} MiB ` +
      `(parts held ≈ part × (queue + 1) = ${mib(partSizeBytes * (queueSize + 1))} MiB, plus Buffers awaiting GC)`,
  );
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => (server.exitCode === null ? server.once('exit', resolve) : resolve(undefined)));
  await rm(dir, { recursive: true, force: true });
}
