// The fake Messages API with the stamping script (stamp-model.ts), run as a process of its own
// for the run-side benches, as the real API is remote: answering the runner's model calls is not
// counted against the process being measured. Started by `startStampModel()` below, which talks
// to it over the IPC channel: `next` arms the script for the next task, `stamps` reads what it
// collected. The process ends when its parent goes away or on SIGTERM/SIGINT.
// BENCH_MODEL_DELAY_MS holds each run's first reply back that long (a real model's latency).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startFakeAnthropic } from '../../test/fakes/anthropic-server.ts';
import { type StampRun, stampModel } from './stamp-model.ts';

type Ask = { op: 'next'; commands: number } | { op: 'stamps' };
type Answer = { op: 'listening'; url: string } | { op: 'armed' } | { op: 'stamps'; stamps: number[] };

export interface StampModelProcess {
  /** Base URL of the fake API (ANTHROPIC_BASE_URL). */
  url: string;
  /** Arms the script for the next task: `commands` stamping commands, then stamp.md. */
  next(commands: number): Promise<void>;
  /** The in-container stamps of the task armed last, in ms since the epoch. */
  stamps(): Promise<number[]>;
  close(): Promise<void>;
}

/** Forks the fake and waits until it listens. */
export async function startStampModel(): Promise<StampModelProcess> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting: Array<(answer: Answer) => void> = [];
  child.on('message', (answer: Answer) => waiting.shift()?.(answer));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const answer = <T extends Answer['op']>(op: T) =>
    new Promise<Extract<Answer, { op: T }>>((resolve, reject) => {
      const onExit = () => reject(new Error('the model fake exited'));
      child.once('exit', onExit);
      waiting.push((a) => {
        child.off('exit', onExit);
        if (a.op === op) resolve(a as Extract<Answer, { op: T }>);
        else reject(new Error(`the model fake answered ${a.op}, not ${op}`));
      });
    });
  const ask = <T extends Answer['op']>(message: Ask, op: T) => {
    const reply = answer(op);
    child.send(message);
    return reply;
  };
  const { url } = await answer('listening');
  return {
    url,
    next: async (commands) => {
      await ask({ op: 'next', commands }, 'armed');
    },
    stamps: async () => (await ask({ op: 'stamps' }, 'stamps')).stamps,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

if (process.argv.includes('--serve') && process.send) {
  const model = await startFakeAnthropic();
  const delay = Number(process.env.BENCH_MODEL_DELAY_MS ?? 0);
  const script = stampModel(model, delay > 0 ? { firstReplyDelayMs: delay } : {});
  let run: StampRun = { stamps: [] };
  const send = (a: Answer) => process.send?.(a);
  process.on('message', (ask: Ask) => {
    if (ask.op === 'next') {
      run = script.next(ask.commands);
      // The fake keeps every request it saw; a long bench would only grow it.
      model.requests.length = 0;
      send({ op: 'armed' });
    } else send({ op: 'stamps', stamps: run.stamps });
  });
  const stop = () => {
    setTimeout(() => process.exit(0), 3_000).unref();
    void model.close().finally(() => process.exit(0));
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, stop);
  process.once('disconnect', stop);
  send({ op: 'listening', url: model.url });
}
