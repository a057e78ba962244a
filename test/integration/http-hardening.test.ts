/**
 * What an attacker can send to the bot's HTTP port, against real servers on 127.0.0.1 and
 * a real Redis: bodies far over their limits (chunked, so no Content-Length warns), console
 * requests without their own Origin, replayed and post-dated Slack requests, /metrics, and
 * malformed download links. No Docker: `handoff bot` alone, nothing runs tasks.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleUsers } from '../../src/bot/surfaces/web/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { FakeSlack, SlackSender } from '../fakes/slack-server.ts';
import { postChunked, startTestBot, type TestBot, watchRss } from '../helpers/bot.ts';
import { ConsoleClient } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const botToken = 'xoxb-4242-test-TOKEN-hardening';
const signingSecret = 'slack-signing-secret-for-hardening';
const metricsToken = 'metrics-token-0123456789abcdef';
const MiB = 1024 * 1024;
const twoGiB = 2 * 1024 * MiB;

/** Everything (not directories) under `dir`; [] when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A console client that signs every request with a personal token (no Origin needed). */
class BearerClient extends ConsoleClient {
  constructor(
    url: string,
    private readonly token: string,
  ) {
    super(url, 'typed-name-ignored');
  }
  protected override headers() {
    return { authorization: `Bearer ${this.token}` };
  }
}

describe('the bot’s HTTP routes hold against hostile requests', () => {
  let redis: EmbeddedRedis;
  const redisDir = join(tmpdir(), `handoff-hardening-${randomBytes(4).toString('hex')}`);
  let fake: FakeSlack;
  let bot: TestBot;
  /** A second bot on the same Redis, as in a deployment with two. */
  let other: TestBot;
  let records: Redis;
  let anaToken: string;
  let slack: SlackSender;

  const taskCount = async () => (await records.keys('hf:task:*')).length;

  beforeAll(async () => {
    redis = await startRedisServer({ dir: redisDir });
    records = new Redis(redis.url);
    anaToken = (await new ConsoleUsers(records).add('Ana')).token;
    fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' } } });
    await fake.start();
    const common = {
      HANDOFF_CONSOLE_SIGNIN: 'tokens',
      SLACK_BOT_TOKEN: botToken,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_API_URL: fake.apiUrl,
      HANDOFF_MAX_UPLOAD_BYTES: String(MiB),
      HANDOFF_MAX_FILES: '2',
    };
    bot = await startTestBot(redis.url, common);
    other = await startTestBot(redis.url, {
      ...common,
      HANDOFF_METRICS_PORT: '0',
      HANDOFF_METRICS_TOKEN: metricsToken,
    });
    slack = new SlackSender(bot.url, signingSecret);
  }, 60_000);

  afterAll(async () => {
    await other?.close();
    await bot?.close();
    await fake?.close();
    records?.disconnect();
    await redis?.stop();
    await rm(redisDir, { recursive: true, force: true });
  });

  describe('bodies are bounded while they are read', () => {
    it('a chunked 2 GiB upload is refused with 413 at the per-file limit: memory stays flat, nothing is kept, the bot goes on', async () => {
      const boundary = `----hardening-${randomBytes(6).toString('hex')}`;
      const prefix = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n@handoff summarise this\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n`,
      );
      const rss = watchRss();
      const res = await postChunked(
        `${bot.url}/api/console/messages`,
        { 'content-type': `multipart/form-data; boundary=${boundary}`, authorization: `Bearer ${anaToken}` },
        prefix,
        twoGiB,
      );
      const grew = rss.stop();
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body).error).toBe('big.csv is over the upload limit of 1.0 MB');
      // Refused while arriving: far less than the 2 GiB was ever sent, let alone kept.
      expect(res.sentBytes).toBeLessThan(64 * MiB);
      expect(grew).toBeLessThan(150 * MiB);
      // The spooled part was removed; nothing reached the artifact store; no task.
      await until('the spool to be emptied', async () =>
        (await filesUnder(join(bot.dataDir, 'uploads'))).length === 0 ? true : undefined,
      );
      expect(await filesUnder(join(bot.dataDir, 'artifacts'))).toEqual([]);
      expect(await taskCount()).toBe(0);

      // The bot keeps serving, uploads included.
      expect((await fetch(`${bot.url}/healthz`)).status).toBe(200);
      const client = new BearerClient(bot.url, anaToken);
      const ok = await client.post('just a note with a file? no: plain chat');
      expect(ok.status, ok.body.error).toBe(201);
    }, 60_000);

    it('an ordinary upload over the per-file limit is refused with 413 naming the file, and nothing is kept', async () => {
      const client = new BearerClient(bot.url, anaToken);
      const posted = await client.post('@handoff summarise this', [
        { name: 'big.csv', content: Buffer.alloc(MiB + 1, 'a') },
      ]);
      expect(posted.status).toBe(413);
      expect(posted.body.error).toBe('big.csv is over the upload limit of 1.0 MB');
      expect(await filesUnder(join(bot.dataDir, 'uploads'))).toEqual([]);
      expect(await taskCount()).toBe(0);
    });

    it('a file of exactly the limit is accepted', async () => {
      const client = new BearerClient(bot.url, anaToken);
      // Without @handoff, files are refused after the upload was read: the 400 shows it got that far.
      const posted = await client.post('no mention here', [{ name: 'exact.csv', content: Buffer.alloc(MiB, 'a') }]);
      expect(posted.status).toBe(400);
      expect(posted.body.error).toBe('mention @handoff to hand off a task with these files');
      expect(await filesUnder(join(bot.dataDir, 'uploads'))).toEqual([]);
    });

    it('a message text that never ends, sent chunked, is refused with 413 at the whole-upload limit', async () => {
      const boundary = `----hardening-${randomBytes(6).toString('hex')}`;
      const prefix = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n`);
      const res = await postChunked(
        `${bot.url}/api/console/messages`,
        { 'content-type': `multipart/form-data; boundary=${boundary}`, authorization: `Bearer ${anaToken}` },
        prefix,
        twoGiB,
      );
      expect(res.status).toBe(413);
      // Two files of 1 MB, the fields and the framing.
      expect(JSON.parse(res.body).error).toBe('the upload is larger than the limit of 2.6 MB');
      expect(res.sentBytes).toBeLessThan(64 * MiB);
    }, 60_000);

    it('a declared Content-Length over the whole-upload limit is refused before reading', async () => {
      const res = await fetch(`${bot.url}/api/console/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${anaToken}`, 'content-type': 'multipart/form-data; boundary=x' },
        body: Buffer.alloc(4 * MiB),
      });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: string }).error).toMatch(/^the upload is larger than the limit of/);
    });

    it('a chunked 2 GiB console action is refused with 413 at 64 KB', async () => {
      const rss = watchRss();
      const res = await postChunked(
        `${bot.url}/api/actions`,
        { 'content-type': 'application/json', authorization: `Bearer ${anaToken}` },
        Buffer.from('{"action":"approve","taskId":"'),
        twoGiB,
      );
      expect(rss.stop()).toBeLessThan(150 * MiB);
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body).error).toBe('an action is at most 64 KB');
      expect(res.sentBytes).toBeLessThan(64 * MiB);
      expect((await fetch(`${bot.url}/healthz`)).status).toBe(200);
    }, 60_000);

    it('a chunked 2 GiB POST to /slack/events is refused with 413 before any signature check', async () => {
      const rss = watchRss();
      const res = await postChunked(
        `${bot.url}/slack/events`,
        { 'content-type': 'application/json' },
        Buffer.from('{"type":"event_callback","padding":"'),
        twoGiB,
      );
      expect(rss.stop()).toBeLessThan(150 * MiB);
      expect(res.status).toBe(413);
      expect(res.sentBytes).toBeLessThan(64 * MiB);
      expect((await fetch(`${bot.url}/healthz`)).status).toBe(200);
    }, 60_000);
  });

  describe('state-changing console requests need the console’s own Origin', () => {
    let cookie: string;
    beforeAll(async () => {
      const signIn = await fetch(`${bot.url}/?token=${anaToken}`, { redirect: 'manual' });
      cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    });
    const postAction = (headers: Record<string, string>) =>
      fetch(`${bot.url}/api/actions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ action: 'cancel', taskId: 't_nosuchtask' }),
      });

    it('refuses a missing Origin with 403 and says why', async () => {
      const res = await postAction({ cookie });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe(
        'refused: this request has no Origin header; the console accepts changes only from its own page (or with an Authorization: Bearer token)',
      );
    });

    it('refuses Origin null with 403 (not 500)', async () => {
      const res = await postAction({ cookie, origin: 'null' });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toMatch(/^refused: Origin is null/);
    });

    it('refuses another site and a malformed Origin with 403', async () => {
      const evil = await postAction({ cookie, origin: 'https://evil.example' });
      expect(evil.status).toBe(403);
      expect(((await evil.json()) as { error: string }).error).toBe(
        'cross-site request refused: Origin https://evil.example is not this console',
      );
      expect((await postAction({ cookie, origin: 'not a url' })).status).toBe(403);
    });

    it('accepts its own Origin, and a Bearer-authenticated request without one', async () => {
      const own = await postAction({ cookie, origin: new URL(bot.url).origin });
      expect(own.status).toBe(404); // past the checks: there is no such task
      const bearer = await postAction({ authorization: `Bearer ${anaToken}` });
      expect(bearer.status).toBe(404);
    });
  });

  it('answers a malformed percent-encoding in a download path with 400', async () => {
    const res = await fetch(`${bot.url}/files/%E0%A4%A?name=x&type=text/plain&exp=1&sig=x`);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('malformed download link');
  });

  describe('/metrics under `handoff bot`', () => {
    it('is not on the main port without a setting', async () => {
      expect((await fetch(`${bot.url}/metrics`)).status).toBe(404);
    });

    it('needs the bearer token on the main port, and serves its own port', async () => {
      const without = await fetch(`${other.url}/metrics`);
      expect(without.status).toBe(401);
      expect(without.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const withToken = await fetch(`${other.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
      expect(withToken.status).toBe(200);
      expect(await withToken.text()).toContain('# TYPE');
      expect(other.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(other.metricsUrl).not.toBe(other.url);
      expect((await fetch(`${other.metricsUrl}/metrics`)).status).toBe(401);
      const own = await fetch(`${other.metricsUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
      expect(own.status).toBe(200);
      // Its port serves nothing else.
      expect((await fetch(`${other.metricsUrl}/healthz`)).status).toBe(404);
    });
  });

  describe('Slack requests', () => {
    const commandBody = (triggerId: string, text: string) =>
      new URLSearchParams({
        token: 'unused',
        team_id: 'T1',
        team_domain: 'test',
        channel_id: 'C1',
        channel_name: 'general',
        user_id: 'UANA',
        user_name: 'Ana',
        command: '/handoff',
        text,
        api_app_id: 'A1',
        response_url: 'http://127.0.0.1:9/unused',
        trigger_id: triggerId,
      }).toString();
    const handedOff = (text: string) =>
      fake.callsOf('chat.postMessage').filter((c) => String(c.args.text).includes(`handed off: ${text}`));

    it('a replayed /handoff command creates one task, whichever bot the replays reach', async () => {
      const before = await taskCount();
      const text = `summarise the numbers ${randomBytes(3).toString('hex')}`;
      const body = commandBody(`trig.${randomBytes(4).toString('hex')}`, text);
      const timestamp = Math.floor(Date.now() / 1000);
      const first = await slack.send(body, 'application/x-www-form-urlencoded', { timestamp });
      expect(first.status).toBe(200);
      await until('the task', async () => ((await taskCount()) === before + 1 ? true : undefined));

      // The same signed request again, to this bot and to the other one.
      const toOther = new SlackSender(other.url, signingSecret);
      const replays = await Promise.all([
        slack.send(body, 'application/x-www-form-urlencoded', { timestamp }),
        toOther.send(body, 'application/x-www-form-urlencoded', { timestamp }),
      ]);
      expect(replays.map((r) => r.status)).toEqual([200, 200]);
      // Signed again with a new timestamp (as a redelivery would be): the trigger id is the same.
      const resigned = await toOther.send(body, 'application/x-www-form-urlencoded', { timestamp: timestamp + 1 });
      expect(resigned.status).toBe(200);
      await new Promise((r) => setTimeout(r, 750));
      expect(await taskCount()).toBe(before + 1);
      expect(handedOff(text)).toHaveLength(1);
    });

    it('a replayed "Hand off…" shortcut creates one task, whichever bot the replays reach', async () => {
      const before = await taskCount();
      const text = `shortcut numbers ${randomBytes(3).toString('hex')}`;
      const payload = {
        type: 'message_action',
        callback_id: 'handoff_message',
        trigger_id: `trig.${randomBytes(4).toString('hex')}`,
        team: { id: 'T1', domain: 'test' },
        user: { id: 'UANA', name: 'Ana' },
        channel: { id: 'C1', name: 'general' },
        message: { type: 'message', ts: `${Math.floor(Date.now() / 1000)}.000900`, text },
        response_url: 'http://127.0.0.1:9/unused',
      };
      const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
      const timestamp = Math.floor(Date.now() / 1000);
      const toOther = new SlackSender(other.url, signingSecret);
      const sent = await Promise.all([
        slack.send(body, 'application/x-www-form-urlencoded', { timestamp }),
        toOther.send(body, 'application/x-www-form-urlencoded', { timestamp: timestamp + 1 }),
      ]);
      expect(sent.map((r) => r.status)).toEqual([200, 200]);
      await until('the task', async () => ((await taskCount()) === before + 1 ? true : undefined));
      await new Promise((r) => setTimeout(r, 750));
      expect(await taskCount()).toBe(before + 1);
    });

    it('refuses a validly signed timestamp more than 5 minutes ahead or behind with 401', async () => {
      const before = await taskCount();
      const text = `from the future ${randomBytes(3).toString('hex')}`;
      const now = Math.floor(Date.now() / 1000);
      for (const timestamp of [now + 60 * 60, now + 6 * 60, now - 6 * 60]) {
        const body = commandBody(`trig.${randomBytes(4).toString('hex')}`, text);
        const res = await slack.send(body, 'application/x-www-form-urlencoded', { timestamp });
        expect(res.status, String(timestamp - now)).toBe(401);
        expect(res.text).toBe('invalid signature: the request timestamp is more than 5 minutes from our clock');
      }
      // Within the window it is accepted.
      const ok = await slack.send(
        commandBody(`trig.${randomBytes(4).toString('hex')}`, text),
        'application/x-www-form-urlencoded',
        {
          timestamp: now + 60,
        },
      );
      expect(ok.status).toBe(200);
      await until('the accepted task', async () => ((await taskCount()) === before + 1 ? true : undefined));
      await new Promise((r) => setTimeout(r, 300));
      expect(await taskCount()).toBe(before + 1);
    });
  });
});

/** A GET with any Host header (fetch does not let a caller choose it). */
function getWithHost(
  url: string,
  host: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { ...headers, host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describeDocker('`handoff dev` answers only to its own names', () => {
  let dev: TestHandoff;
  let shared: TestHandoff;
  const token = randomBytes(16).toString('hex');
  beforeAll(async () => {
    dev = await startDevHandoff();
    shared = await startDevHandoff({ env: { HANDOFF_HOST: '0.0.0.0', HANDOFF_CONSOLE_TOKEN: token } });
  }, 120_000);
  afterAll(async () => {
    await shared?.close();
    await dev?.close();
  });

  it('refuses a Host that is not its own (DNS rebinding) with 403, on every route', async () => {
    const port = new URL(dev.url).port;
    for (const path of ['/api/console/messages?channel=general', '/api/session', '/healthz']) {
      const res = await getWithHost(`${dev.url}${path}`, `rebound.example:${port}`);
      expect(res.status, path).toBe(403);
      expect(res.body).toMatch(/^refused: Host "rebound\.example:\d+" is not a name of this server/);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      expect((await getWithHost(`${dev.url}/api/session`, host)).status, host).toBe(200);
    }
  });

  it('keeps typed names on loopback, and needs its own Origin to change anything', async () => {
    const client = new ConsoleClient(dev.url, 'Ana');
    const ok = await client.post('morning all');
    expect(ok.status, ok.body.error).toBe(201);
    expect(ok.body.message?.author.name).toBe('Ana');
    const noOrigin = await fetch(`${dev.url}/api/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'cancel', taskId: 't_none', author: 'Ana' }),
    });
    expect(noOrigin.status).toBe(403);
  });

  it('on a non-loopback address every console request needs the token; a Bearer one skips the Origin check', async () => {
    expect((await fetch(`${shared.url}/api/session`)).status).toBe(401);
    expect((await fetch(`${shared.url}/healthz`)).status).toBe(200);
    const bearer = { authorization: `Bearer ${token}` };
    expect((await fetch(`${shared.url}/api/session`, { headers: bearer })).status).toBe(200);
    const posted = await fetch(`${shared.url}/api/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer },
      body: JSON.stringify({ action: 'cancel', taskId: 't_none', author: 'Ana' }),
    });
    expect(posted.status).toBe(404); // past every check: no such task
    // The browser way: the link sets a cookie, and then the page's own Origin is needed.
    const link = await fetch(`${shared.url}/?token=${token}`, { redirect: 'manual' });
    const cookie = link.headers.get('set-cookie')!.split(';')[0]!;
    const viaCookie = (origin?: string) =>
      fetch(`${shared.url}/api/actions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, ...(origin ? { origin } : {}) },
        body: JSON.stringify({ action: 'cancel', taskId: 't_none', author: 'Ana' }),
      });
    expect((await viaCookie()).status).toBe(403);
    expect((await viaCookie(new URL(shared.url).origin)).status).toBe(404);
  });
});
