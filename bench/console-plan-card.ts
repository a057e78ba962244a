/**
 * How long from posting a request in the web console until its plan card arrives on the
 * event stream. Starts a dev Handoff (redis-server, bot, runner with Docker, demo model),
 * posts the sample sales request N times over the HTTP API and prints median and p95.
 *
 * Run: npx tsx bench/console-plan-card.ts   (BENCH_N=20 for more samples)
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { startDevHandoff } from '../test/helpers/handoff.ts';

interface ConsoleMessage {
  id: string;
  threadId: string;
  author: { name: string; bot: boolean };
  html?: string;
}

const runs = Number(process.env.BENCH_N ?? 10);
const planTimeoutMs = 180_000;
const request = '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart';

/** A plan card is the bot message in the thread that carries an Approve button. */
const isPlanCard = (m: ConsoleMessage) => m.author.bot && /data-action="approve"/.test(m.html ?? '');

/** Reads the console's SSE stream and hands every message event to `onMessage`. */
async function followEvents(url: string, signal: AbortSignal, onMessage: (m: ConsoleMessage) => void): Promise<void> {
  const res = await fetch(new URL('/api/events?channel=general', url), {
    signal,
    headers: { accept: 'text/event-stream' },
  });
  if (!res.ok || !res.body) throw new Error(`GET /api/events answered ${res.status}`);
  const decoder = new TextDecoder();
  let buffer = '';
  const pump = async () => {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (event === 'message' && data.length > 0) onMessage(JSON.parse(data.join('\n')) as ConsoleMessage);
      }
    }
  };
  // The stream ends when the signal aborts; that is the normal way out.
  pump().catch((err: unknown) => {
    if (!signal.aborted) process.stderr.write(`event stream failed: ${(err as Error).message}\n`);
  });
}

function percentile(sorted: number[], p: number): number {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

async function main(): Promise<void> {
  const csv = await readFile(new URL('../examples/sales.csv', import.meta.url));
  const handoff = await startDevHandoff();
  const stop = new AbortController();
  const waiting = new Map<string, (at: number) => void>();
  const seen = new Map<string, number>();
  try {
    await followEvents(handoff.url, stop.signal, (m) => {
      if (!isPlanCard(m)) return;
      const at = performance.now();
      const resolve = waiting.get(m.threadId);
      if (resolve) resolve(at);
      else if (!seen.has(m.threadId)) seen.set(m.threadId, at);
    });

    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const form = new FormData();
      form.set('channel', 'general');
      form.set('author', 'Bench');
      form.set('text', request);
      form.append('files', new Blob([csv], { type: 'text/csv' }), 'sales.csv');
      const started = performance.now();
      // The Origin the console page would send: state-changing console requests need it.
      const res = await fetch(new URL('/api/messages', handoff.url), {
        method: 'POST',
        body: form,
        headers: { origin: new URL(handoff.url).origin },
      });
      const body = (await res.json()) as { message?: ConsoleMessage; error?: string };
      if (res.status !== 201 || !body.message)
        throw new Error(`POST /api/messages answered ${res.status}: ${body.error ?? ''}`);
      const threadId = body.message.id;
      const arrived = await new Promise<number>((resolve, reject) => {
        // The card may already have arrived while the POST answer was on its way.
        const early = seen.get(threadId);
        if (early !== undefined) return resolve(early);
        const timer = setTimeout(() => reject(new Error(`no plan card within ${planTimeoutMs} ms`)), planTimeoutMs);
        waiting.set(threadId, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
        return undefined;
      });
      waiting.delete(threadId);
      const ms = arrived - started;
      samples.push(ms);
      process.stdout.write(`run ${i + 1}/${runs}: ${ms.toFixed(0)} ms\n`);
    }

    const sorted = [...samples].sort((a, b) => a - b);
    const median =
      sorted.length % 2 === 1
        ? sorted[(sorted.length - 1) / 2]!
        : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    process.stdout.write(
      `console plan card (POST /api/messages -> plan card on /api/events): N=${sorted.length} median=${median.toFixed(0)} ms p95=${percentile(sorted, 95).toFixed(0)} ms min=${sorted[0]!.toFixed(0)} ms max=${sorted.at(-1)!.toFixed(0)} ms\n`,
    );
  } finally {
    stop.abort();
    await handoff.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
