/**
 * docker-compose.yml end to end, with the images built here (scripts/build-app-image.sh,
 * the registry-free base): two bots, two runners and Redis come up healthy; a console task
 * reaches its deliverable although the runner doing it is killed mid-run; everything is
 * torn down with `down -v`, also when a step fails.
 */
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/bot.ts';
import { BearerClient, type ComposeStack, composeAvailability, prepareComposeStack } from '../helpers/compose.ts';
import { links, planButtons } from '../helpers/console-client.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
const salesRequest = '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type AuditRecord = { type: string; taskId?: string; data: Record<string, unknown> };

describe('docker-compose.yml: 2 bots, 2 runners, Redis', async () => {
  const availability = await composeAvailability();
  if (!availability.ok) {
    if (process.env.HANDOFF_REQUIRE_DOCKER === '1') {
      it('has docker compose and the images (HANDOFF_REQUIRE_DOCKER=1)', () => {
        throw new Error(`HANDOFF_REQUIRE_DOCKER=1 but ${availability.reason}`);
      });
    } else {
      console.warn(`[compose.test] SKIPPED: ${availability.reason}`);
      it.skip(`needs docker compose and the images: ${availability.reason}`, () => {});
    }
    return;
  }

  const docker = new Dockerode();
  let stack: ComposeStack;
  let redis: Redis | undefined;

  /** Runs `fn`; on failure the services' logs are added to the error. */
  async function withLogs(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      const logs = await stack.logs();
      (err as Error).message += `\n--- docker compose logs (${stack.project}) ---\n${logs.slice(-12_000)}`;
      throw err;
    }
  }

  async function container(service: string) {
    const id = (await stack.compose(['ps', '-q', service])).trim();
    if (!id) throw new Error(`service ${service} has no container`);
    return docker.getContainer(id).inspect();
  }

  async function audit(taskId: string): Promise<AuditRecord[]> {
    return (await redis!.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r) as AuditRecord)
      .filter((r) => r.taskId === taskId);
  }

  beforeAll(async () => {
    stack = await prepareComposeStack(availability.command, [await freePort(), await freePort(), await freePort()]);
    await withLogs(async () => {
      await stack.compose(['build', 'redis'], 600_000);
      await stack.compose(['up', '-d'], 300_000);
      await stack.waitReady(180_000);
    });
    redis = stack.redis();
  }, 900_000);

  afterAll(async () => {
    redis?.disconnect();
    await stack?.down();
  }, 300_000);

  it('every service is up as designed: non-root, tini as PID 1, ports on 127.0.0.1 only, Redis with AOF and noeviction', async () => {
    await withLogs(async () => {
      for (const service of ['bot-1', 'bot-2', 'runner-1', 'runner-2', 'redis']) {
        const info = await container(service);
        expect(info.State.Running, service).toBe(true);
        // Published ports listen on loopback only.
        const published = Object.values(info.HostConfig.PortBindings ?? {}) as Array<Array<{ HostIp: string }> | null>;
        for (const bindings of published)
          for (const b of bindings ?? [])
            expect(b.HostIp, `${service} publishes ${JSON.stringify(b)}`).toBe('127.0.0.1');
        const pid1 = await stack.compose(['exec', '-T', service, 'cat', '/proc/1/cmdline']);
        expect(pid1.split('\0')[0], service).toBe('/usr/bin/tini');
        const uid = (await stack.compose(['exec', '-T', service, 'id', '-u'])).trim();
        expect(uid, service).not.toBe('0');
      }
      for (const service of ['bot-1', 'bot-2', 'runner-1', 'runner-2']) {
        const info = await container(service);
        expect(info.Config.User, service).toBe('handoff');
        expect(info.HostConfig.ReadonlyRootfs, service).toBe(true);
        expect(info.HostConfig.CapDrop, service).toEqual(['ALL']);
        expect(info.HostConfig.SecurityOpt, service).toContain('no-new-privileges:true');
        expect(info.Config.Image).toBe(process.env.HANDOFF_APP_IMAGE ?? 'handoff-app:latest');
        // Same path inside and outside: the host's engine mounts runner workspaces from it.
        expect(info.HostConfig.Binds ?? [], service).toContain(`${stack.dataDir}:${stack.dataDir}:rw`);
      }
      for (const service of ['runner-1', 'runner-2']) {
        const info = await container(service);
        expect(info.HostConfig.Binds ?? []).toContain('/var/run/docker.sock:/var/run/docker.sock:rw');
      }
      expect(await redis!.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await redis!.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      // Redis refuses clients without the password.
      const anonymous = new Redis({
        host: '127.0.0.1',
        port: stack.redisPort,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        enableReadyCheck: false,
      });
      anonymous.on('error', () => undefined);
      try {
        await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
      } finally {
        anonymous.disconnect();
      }
      // The image's HEALTHCHECK (node bin/healthcheck.js: /readyz for bots, /healthz for runners) reports healthy.
      for (const service of ['bot-1', 'bot-2', 'runner-1', 'runner-2', 'redis']) {
        const deadline = Date.now() + 90_000;
        let status = '';
        while (Date.now() < deadline) {
          status = (await container(service)).State.Health?.Status ?? 'none';
          if (status === 'healthy') break;
          await sleep(1000);
        }
        expect(status, service).toBe('healthy');
      }
    });
  }, 240_000);

  it('a console task reaches its deliverable although its runner is killed mid-run; the run resumes on the other', async () => {
    await withLogs(async () => {
      const anaToken = await stack.addUser('Ana');
      const bobToken = await stack.addUser('Bob');
      // Ana asks through bot-1; Bob approves through bot-2: both bots share the same Redis.
      const ana = new BearerClient(stack.botUrls[0]!, anaToken, 'Ana');
      const bob = new BearerClient(stack.botUrls[1]!, bobToken, 'Bob');

      // Only runner-1 takes the run, so the test knows which runner to kill.
      await stack.compose(['stop', 'runner-2'], 120_000);
      const runner1Id = (await container('runner-1')).Id;
      const posted = await ana.post(salesRequest, [{ name: 'sales.csv', path: salesCsv }]);
      expect(posted.status, posted.body.error).toBe(201);
      const thread = posted.body.message!.id;
      const card = await ana.waitForCard(thread, (h) => h.includes('card plan'), 180_000);
      const buttons = planButtons(card.html!);
      const approved = await bob.action({ action: 'approve', ...buttons });
      expect(approved.status, approved.body.error ?? approved.body.message).toBe(200);

      // Mid-run: the run has started on runner-1 and at least one tool call has been made.
      const runner1 = `${stack.runnerPrefix}-runner-1`;
      const runner2 = `${stack.runnerPrefix}-runner-2`;
      const deadline = Date.now() + 180_000;
      for (;;) {
        const records = await audit(buttons.taskId);
        const started = records.find((r) => r.type === 'run.started');
        const ended = records.find((r) => r.type === 'run.succeeded' || r.type === 'run.failed');
        if (ended) throw new Error(`the run ended before the test could kill its runner: ${JSON.stringify(ended)}`);
        if (started && records.some((r) => r.type === 'tool.call')) {
          expect(started.data.runner).toBe(runner1);
          break;
        }
        if (Date.now() > deadline)
          throw new Error(`the run did not start: ${JSON.stringify(records.map((r) => r.type))}`);
        await sleep(50);
      }
      // SIGKILL straight through the engine, at once: `docker-compose kill` takes about a
      // second to start, as long as the demo run's next steps may take. If the run still
      // ended first, the run.resumed check below fails rather than passing without a kill.
      await docker.getContainer(runner1Id).kill({ signal: 'SIGKILL' });
      expect((await container('runner-1')).State.Running).toBe(false);
      await stack.compose(['start', 'runner-2'], 120_000);

      const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 240_000);
      const records = await audit(buttons.taskId);
      // On failure, the run's audit trail says where the kill fell and what the resumed run did.
      expect(result.html, JSON.stringify(records.map((r) => [r.type, r.data]))).toContain('Done');
      expect(records.filter((r) => r.type === 'run.started')).toHaveLength(1);
      expect(records.find((r) => r.type === 'run.resumed')?.data.runner).toBe(runner2);
      expect(records.filter((r) => r.type === 'run.succeeded')).toHaveLength(1);

      // The deliverable: a real workbook, downloadable from either bot (the shared data dir).
      const files = links(result.html!);
      const sheet = files.find((f) => f.name.endsWith('.xlsx'));
      expect(sheet, JSON.stringify(files)).toBeDefined();
      for (const botUrl of stack.botUrls) {
        const href = new URL(sheet!.href, stack.botUrls[0]);
        const res = await fetch(new URL(`${href.pathname}${href.search}`, botUrl));
        expect(res.status, botUrl).toBe(200);
        const bytes = Buffer.from(await res.arrayBuffer());
        expect(bytes.subarray(0, 2).toString('latin1')).toBe('PK'); // a zip: xlsx
        expect(bytes.length).toBeGreaterThan(2000);
      }

      // The killed runner comes back and is ready for work again.
      await stack.compose(['start', 'runner-1'], 120_000);
      expect((await container('runner-1')).State.Running).toBe(true);
    });
  }, 600_000);
});
