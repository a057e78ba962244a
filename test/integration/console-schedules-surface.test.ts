/**
 * The web console's side of scheduled briefs against a real Redis: top-level posts (a brief
 * is the root of its own thread), notices to a person in their own `dm-…` channel, and who
 * may open such a channel where people sign in.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/bot/gateway.ts';
import {
  ConsoleSessions,
  ConsoleStore,
  ConsoleUsers,
  consoleChannelPattern,
  consoleRoutes,
  noticesChannelFor,
  WebSurface,
} from '../../src/bot/surfaces/web/index.ts';
import type { BriefView, ScheduleListView } from '../../src/bot/views.ts';
import { ErrorCodes } from '../../src/core/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';

const brief: BriefView = {
  kind: 'brief',
  taskId: 't_1',
  scheduleId: 's_1',
  title: 'Sales brief <July>',
  date: 'Mon 6 Jul 2026, 09:00 CEST',
  state: 'posted',
  summary: 'Total $154,049.00',
  body: '# Sales brief <July>\n\n- **Total:** $154,049.00\n- <img src=x onerror=alert(1)>\n',
  files: [],
  owner: 'Ana',
  demo: true,
};

describe('the web surface for schedules (real Redis)', () => {
  let server: EmbeddedRedis;
  let dir: string;
  const connections: Redis[] = [];
  const connect = () => {
    const r = new Redis(server.url, { maxRetriesPerRequest: 1 });
    connections.push(r);
    return r;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-console-schedules-'));
    server = await startRedisServer({ dir: join(dir, 'redis') });
  });
  afterAll(async () => {
    for (const c of connections) c.disconnect();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('posts a brief as a new top-level message that is its own thread, and edits it in place', async () => {
    const store = new ConsoleStore(connect());
    const surface = new WebSurface(store);
    const ref = await surface.postToChannel({ surface: 'web', channel: 'general' }, { ...brief, state: 'running' });
    const posted = await store.get(ref);
    expect(posted).toMatchObject({
      id: ref,
      threadId: ref,
      channel: 'general',
      author: { name: 'handoff', bot: true },
    });
    expect(posted?.html).toContain('Preparing this brief');

    await surface.update({ surface: 'web', channel: 'general', thread: ref }, ref, brief);
    const html = (await store.get(ref))?.html ?? '';
    expect(html).toContain('class="card brief brief-posted status-done"');
    expect(html).toContain('<h3>Sales brief &lt;July&gt;</h3>');
    // The title heading is not repeated; the list is formatted; nothing from outside is markup.
    expect(html).toContain('<li><strong>Total:</strong> $154,049.00</li>');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<img');
    expect(html.match(/Sales brief &lt;July&gt;/g)).toHaveLength(1);

    await expect(surface.postToChannel({ surface: 'web', channel: 'Not a channel' }, brief)).rejects.toMatchObject({
      code: ErrorCodes.channelUnavailable,
    });
    expect(await surface.person({ surface: 'web', channel: 'general' }, 'web:ana')).toBeUndefined();
  });

  it("tells a person in their own notices channel, named so that nobody else's is the same", async () => {
    const store = new ConsoleStore(connect());
    const surface = new WebSurface(store);
    await surface.notifyPerson({ surface: 'web', channel: 'general' }, 'web:ana', {
      kind: 'status',
      text: 'Your schedule is paused',
      tone: 'error',
      demo: false,
    });
    const [notice] = await store.list('dm-ana');
    expect(notice?.threadId).toBe(notice?.id);
    expect(notice?.html).toContain('Your schedule is paused');
    expect((await store.list('general')).some((m) => m.html?.includes('Your schedule is paused'))).toBe(false);

    const ids = [
      'web:ana',
      'web:ana b',
      'web:ana-b',
      'web:user:ana',
      'web:oidc:Ana|42',
      'web:张伟',
      `web:${'x'.repeat(80)}`,
    ];
    const channels = ids.map(noticesChannelFor);
    for (const ch of channels) expect(ch).toMatch(consoleChannelPattern);
    expect(new Set(channels).size).toBe(ids.length);
    expect(channels.slice(0, 3)).toEqual(['dm-ana', expect.stringMatching(/^dm-ana-b-[0-9a-f]{8}$/), 'dm-ana-b']);
  });

  it('where people sign in, only its owner opens a notices channel', async () => {
    const redis = connect();
    const users = new ConsoleUsers(redis);
    const ana = await users.add('Ana Lopez', `ana-${Date.now()}`);
    const ben = await users.add('Ben', `ben-${Date.now()}`);
    const list: ScheduleListView = { kind: 'schedules', channel: 'general', items: [], demo: false };
    const gateway = { schedules: { list: async () => list } } as unknown as Gateway;
    const app = consoleRoutes({
      gateway,
      store: new ConsoleStore(redis),
      subscriber: connect(),
      logger: pino({ level: 'silent' }),
      mode: 'bot',
      access: { kind: 'signin', method: 'tokens', sessions: new ConsoleSessions(redis, 3_600_000), users },
      publicUrl: () => 'http://console.test',
      demo: false,
      model: 'test',
      maxUploadBytes: 1024,
      maxFiles: 1,
      spoolDir: dir,
    });
    const get = (path: string, token: string) =>
      app.request(`http://console.test${path}`, { headers: { authorization: `Bearer ${token}` } });
    const anas = noticesChannelFor(`web:user:${ana.user.id}`);

    expect((await get(`/api/console/messages?channel=${anas}`, ana.token)).status).toBe(200);
    const refused = await get(`/api/console/messages?channel=${anas}`, ben.token);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toMatch(/another person's notices channel/);
    expect((await get(`/api/schedules?channel=${anas}`, ben.token)).status).toBe(403);
    expect((await get(`/api/events?channel=${anas}`, ben.token)).status).toBe(403);

    const schedules = await get('/api/schedules?channel=general', ben.token);
    expect(schedules.status).toBe(200);
    expect(((await schedules.json()) as { html: string }).html).toContain('No schedules here yet');
    // Signed out, the schedules are not shown at all.
    expect((await app.request('http://console.test/api/schedules?channel=general')).status).toBe(401);
  });
});
