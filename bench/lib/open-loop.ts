// Load for the ingress benchmarks (bench/teams.ts, bench/slack-ingress.ts), run as its own
// process: POSTs prepared, signed requests to one URL and prints what came back as JSON on
// stdout.
//
//   node --import tsx bench/lib/open-loop.ts <plan.json>
//
// Open loop (`rate`): request i is due at start + i / rate whatever the answers to earlier
// ones (a slow server does not slow the sender down), and its latency is measured from when
// it was due to the end of its answer, so time spent queued on either side counts.
// Closed loop (`concurrency`): that many requests in flight, each sent as soon as one is
// answered, for the most the server takes (`achievedRate` is then answers per second).
// Keep-alive connections.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

/** What the parent writes: the URL, the rate, and one prepared request per send. */
export interface LoadPlan {
  url: string;
  /** Requests per second (open loop). */
  rate: number;
  /**
   * When set: a closed loop with this many requests in flight instead of a fixed rate; every
   * request of the plan is sent and the first `warmupSec × rate` are left out of the figures.
   */
  concurrency?: number;
  /** Seconds sent first and left out of the figures. */
  warmupSec: number;
  /** Seconds measured after the warm-up. */
  seconds: number;
  /** Sent in order; `rate × (warmupSec + seconds)` of them. */
  requests: Array<{ body: string; headers: Record<string, string> }>;
}

/** What is printed on stdout, as one JSON document. */
export interface LoadResult {
  rate: number;
  sent: number;
  /** Latencies (ms) of the measured requests, in send order. */
  latencies: number[];
  /** Status codes of the measured requests (0: no answer: connection error or 10 s timeout). */
  statuses: Record<string, number>;
  /** Status codes during the warm-up. */
  warmupStatuses: Record<string, number>;
  /** The most a send started after it was due (the sender's own lateness), ms. */
  maxLagMs: number;
  /** Sends per second actually achieved over the whole run (closed loop: answers per second after the warm-up). */
  achievedRate: number;
}

const timeoutMs = 10_000;

async function main(): Promise<void> {
  const path = process.argv[2];
  if (!path) throw new Error('usage: open-loop.ts <plan.json>');
  const plan = JSON.parse(readFileSync(path, 'utf8')) as LoadPlan;
  const closed = plan.concurrency !== undefined && plan.concurrency > 0;
  const total = closed ? plan.requests.length : Math.round(plan.rate * (plan.warmupSec + plan.seconds));
  const warmupCount = Math.round(plan.rate * plan.warmupSec);
  if (plan.requests.length < total) throw new Error(`the plan has ${plan.requests.length} requests, ${total} needed`);
  // Everything a send needs is ready before the clock starts.
  const prepared = plan.requests.slice(0, total).map((r) => {
    const body = Buffer.from(r.body, 'utf8');
    return { body, headers: { ...r.headers, 'content-length': String(body.length) } };
  });
  const url = new URL(plan.url);
  if (url.hostname !== '127.0.0.1') throw new Error('the load goes to 127.0.0.1 only');
  const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
  const interval = 1000 / plan.rate;
  const due = (i: number) => start + i * interval;
  const warmupEnds = plan.warmupSec * 1000;

  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const warmupStatuses: Record<string, number> = {};
  let finished = 0;
  let maxLagMs = 0;
  let allDone: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    allDone = r;
  });

  const sentAt: number[] = [];
  let firstMeasured = 0;
  let lastAnswer = 0;
  const record = (i: number, status: number) => {
    lastAnswer = performance.now();
    const ms = lastAnswer - (closed ? sentAt[i]! : due(i));
    if (closed ? i >= warmupCount : i * interval >= warmupEnds) {
      latencies.push(ms);
      statuses[status] = (statuses[status] ?? 0) + 1;
    } else {
      warmupStatuses[status] = (warmupStatuses[status] ?? 0) + 1;
    }
    finished += 1;
    if (finished === total) allDone();
    if (closed && next < total) fire(next++);
  };

  const fire = (i: number) => {
    const r = prepared[i]!;
    sentAt[i] = performance.now();
    if (i === warmupCount) firstMeasured = sentAt[i]!;
    let answered = false;
    const finish = (status: number) => {
      if (answered) return;
      answered = true;
      record(i, status);
    };
    const req = request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      agent,
      headers: r.headers,
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')));
    req.on('response', (res) => {
      res.on('data', () => undefined);
      res.on('end', () => finish(res.statusCode ?? 0));
      res.on('error', () => finish(0));
    });
    req.on('error', () => finish(0));
    req.end(r.body);
  };

  let next = 0;
  let lastSend = 0;
  const start = performance.now() + 20;
  const tick = () => {
    const now = performance.now();
    while (next < total && due(next) <= now) {
      maxLagMs = Math.max(maxLagMs, now - due(next));
      fire(next);
      lastSend = performance.now();
      next += 1;
    }
    if (next < total) setTimeout(tick, Math.max(0, due(next) - performance.now()));
  };
  if (closed) {
    setTimeout(() => {
      while (next < Math.min(total, plan.concurrency!)) fire(next++);
    }, 20);
  } else {
    setTimeout(tick, 20);
  }
  // Tells the parent (when it is one) that the clock runs.
  process.send?.({ started: true });
  await done;
  agent.destroy();
  const result: LoadResult = {
    rate: plan.rate,
    sent: total,
    latencies,
    statuses,
    warmupStatuses,
    maxLagMs,
    achievedRate: closed
      ? latencies.length / Math.max((lastAnswer - firstMeasured) / 1000, 0.001)
      : (total - 1) / Math.max((lastSend - start) / 1000, 0.001),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

// Never outlives its parent, nor its run.
process.on('disconnect', () => process.exit(1));
setTimeout(() => process.exit(2), 120_000).unref();

main().catch((err: unknown) => {
  console.error(`open-loop: ${(err as Error).message}`);
  process.exit(1);
});
