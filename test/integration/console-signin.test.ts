/**
 * Console identity under `handoff bot`: people sign in (a personal link made by
 * `handoff console add-user`, or a real OpenID provider on loopback), and everything they
 * do carries that identity, whatever name the request body claims.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleUsers, consoleCommand } from '../../src/bot/surfaces/web/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { type RunningHandoff, startHandoff } from '../../src/main.ts';
import { createLogger } from '../../src/observability/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { freePort, startTestBot, type TestBot } from '../helpers/bot.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startOpenIdProvider, type TestOpenIdProvider } from '../helpers/openid-provider.ts';

const repoRoot = new URL('../../', import.meta.url).pathname;

/** Runs the real CLI (`bin/handoff.js`) with `env`; resolves with its exit code and output. */
function handoffCli(args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/handoff.js', ...args], {
      cwd: repoRoot,
      env: { ...process.env, HANDOFF_CONFIG: '/dev/null', LOG_LEVEL: 'silent', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/** The `name=value` of a Set-Cookie header, and the header itself. */
function cookieOf(res: Response, name: string): { pair: string; header: string } | undefined {
  const header = res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
  return header ? { pair: header.split(';')[0]!, header } : undefined;
}

/** A console client with a session cookie, as a signed-in browser is. */
class CookieClient extends ConsoleClient {
  constructor(
    url: string,
    private readonly cookie: string,
    typedName = 'Bob',
  ) {
    super(url, typedName);
  }
  protected override headers() {
    return { cookie: this.cookie };
  }
}

describe('console sign-in under `handoff bot`', () => {
  let redis: EmbeddedRedis;
  const redisDir = join(tmpdir(), `handoff-signin-${randomBytes(4).toString('hex')}`);
  let records: Redis;

  beforeAll(async () => {
    redis = await startRedisServer({ dir: redisDir });
    records = new Redis(redis.url);
  });
  afterAll(async () => {
    records?.disconnect();
    await redis?.stop();
    await rm(redisDir, { recursive: true, force: true });
  });

  describe('with per-person links (HANDOFF_CONSOLE_SIGNIN=tokens)', () => {
    let bot: TestBot;
    beforeAll(async () => {
      bot = await startTestBot(redis.url, { HANDOFF_CONSOLE_SIGNIN: 'tokens' });
    }, 30_000);
    afterAll(async () => bot?.close());
    /** The same command in this process (quicker than a child for the cases after the first). */
    const inProcess = async (args: string[]) => {
      let out = '';
      let err = '';
      const code = await consoleCommand(
        args,
        { redisUrl: redis.url, publicUrl: bot.url },
        { log: (l) => (out += `${l}\n`), error: (l) => (err += `${l}\n`) },
      );
      return { code, out, err };
    };

    it('`handoff console --help` explains the subcommands, and `handoff --help` lists them', async () => {
      const help = await handoffCli(['console', '--help'], {});
      expect(help.code).toBe(0);
      expect(help.out).toContain('handoff console add-user NAME [--id ID]');
      expect(help.out).toContain('list-users');
      expect(help.out).toContain('remove-user NAME|ID');
      const top = await handoffCli(['--help'], {});
      expect(top.out).toContain('console add-user NAME');
      const bad = await inProcess(['add-user']);
      expect(bad.code).toBe(2);
      expect(bad.err).toContain('usage: handoff console add-user NAME');
    }, 60_000);

    it('add-user prints a sign-in link once; opening it signs the person in with a Strict, HttpOnly session cookie', async () => {
      const added = await handoffCli(['console', 'add-user', 'Ana'], {
        REDIS_URL: redis.url,
        HANDOFF_PUBLIC_URL: bot.url,
      });
      expect(added.code, added.err).toBe(0);
      expect(added.out).toContain('added Ana as web:user:ana');
      const link = /^(http:\/\/\S+\/\?token=hfc_[A-Za-z0-9_-]{43})$/m.exec(added.out)?.[1];
      expect(link, added.out).toBeDefined();
      // Only the token's hash is kept.
      const token = new URL(link!).searchParams.get('token')!;
      const keys = await records.keys('hf:console-auth:*');
      expect(keys.join(' ')).not.toContain(token);
      for (const key of keys) expect(await records.dump(key)).not.toContain(token);

      const again = await inProcess(['add-user', 'ana']);
      expect(again.code).toBe(1);
      expect(again.err).toContain('a console user with the id ana already exists');
      const lookalike = await inProcess(['add-user', 'Аna']); // Cyrillic А
      expect(lookalike.code).toBe(1);
      expect(lookalike.err).toContain('give one with --id');
      const listed = await inProcess(['list-users']);
      expect(listed.out).toMatch(/^ana\tAna\tadded /m);

      // Without signing in: the page loads and says so; the API refuses.
      const session = (await (await fetch(`${bot.url}/api/session`)).json()) as { signin: string; user: unknown };
      expect(session).toMatchObject({ signin: 'tokens', user: null });
      expect((await fetch(`${bot.url}/`)).status).toBe(200);
      expect((await fetch(`${bot.url}/api/console/messages?channel=general`)).status).toBe(401);
      expect((await fetch(`${bot.url}/?token=hfc_${'x'.repeat(43)}`, { redirect: 'manual' })).status).toBe(401);

      const signIn = await fetch(link!, { redirect: 'manual' });
      expect(signIn.status).toBe(302);
      expect(signIn.headers.get('location')).toBe('/');
      const cookie = cookieOf(signIn, 'handoff_session')!;
      expect(cookie.header).toMatch(/; HttpOnly/);
      expect(cookie.header).toMatch(/; SameSite=Strict/);
      expect(cookie.header).toMatch(/; Path=\//);
      expect(cookie.header).not.toMatch(/; Secure/); // plain http on loopback
      expect(cookie.pair).not.toContain(token); // a session id, not the token
      const me = (await (await fetch(`${bot.url}/api/session`, { headers: { cookie: cookie.pair } })).json()) as {
        user: { id: string; name: string };
      };
      expect(me.user).toEqual({ id: 'web:user:ana', name: 'Ana' });
      // The session lives in Redis with a time to live (HANDOFF_CONSOLE_SESSION_TTL_MS, 12 h by default).
      const sessionKeys = await records.keys('hf:console-auth:session:*');
      expect(sessionKeys.length).toBeGreaterThan(0);
      for (const k of sessionKeys) {
        const ttl = await records.pttl(k);
        expect(ttl, k).toBeGreaterThan(0);
        expect(ttl, k).toBeLessThanOrEqual(12 * 3_600_000);
      }

      // The body's author is ignored: the message is Ana's, whatever it claims.
      const client = new CookieClient(bot.url, cookie.pair, 'Bob');
      const posted = await client.post('hello from the real Ana');
      expect(posted.status, posted.body.error).toBe(201);
      expect(posted.body.message?.author.name).toBe('Ana');

      // Signing out ends the session on the server, not just in this browser.
      const out = await fetch(`${bot.url}/auth/signout`, {
        method: 'POST',
        headers: { cookie: cookie.pair, origin: new URL(bot.url).origin },
      });
      expect(out.status).toBe(200);
      expect(cookieOf(out, 'handoff_session')?.header).toMatch(/Max-Age=0/);
      expect(
        (await fetch(`${bot.url}/api/console/messages?channel=general`, { headers: { cookie: cookie.pair } })).status,
      ).toBe(401);

      // Removing the user ends their link and every session at once.
      const again2 = cookieOf(await fetch(link!, { redirect: 'manual' }), 'handoff_session')!;
      expect(
        (await fetch(`${bot.url}/api/console/messages?channel=general`, { headers: { cookie: again2.pair } })).status,
      ).toBe(200);
      const removed = await inProcess(['remove-user', 'Ana']);
      expect(removed.code, removed.err).toBe(0);
      expect(
        (await fetch(`${bot.url}/api/console/messages?channel=general`, { headers: { cookie: again2.pair } })).status,
      ).toBe(401);
      expect((await fetch(link!, { redirect: 'manual' })).status).toBe(401);
    }, 60_000);

    it('behind an https public URL: the cookie is Secure and that URL is accepted as Origin', async () => {
      const port = await freePort();
      const publicUrl = 'https://handoff.example.test';
      const proxied = await startTestBot(redis.url, {
        HANDOFF_CONSOLE_SIGNIN: 'tokens',
        HANDOFF_PORT: String(port),
        HANDOFF_PUBLIC_URL: publicUrl,
      });
      try {
        const added = { out: '' };
        await consoleCommand(
          ['add-user', 'Dora'],
          { redisUrl: redis.url, publicUrl },
          { log: (l) => (added.out += `${l}\n`), error: () => undefined },
        );
        const link = /^(https:\/\/handoff\.example\.test\/\?token=\S+)$/m.exec(added.out)?.[1];
        expect(link, added.out).toBeDefined();
        // As a TLS-terminating proxy would forward it.
        const direct = `http://127.0.0.1:${port}`;
        const signIn = await fetch(`${direct}/${new URL(link!).search}`, { redirect: 'manual' });
        const cookie = cookieOf(signIn, 'handoff_session')!;
        expect(cookie.header).toMatch(/; Secure/);
        const post = await fetch(`${direct}/auth/signout`, {
          method: 'POST',
          headers: { cookie: cookie.pair, origin: publicUrl, host: `127.0.0.1:${port}` },
        });
        expect(post.status).toBe(200);
      } finally {
        await proxied.close();
      }
    }, 60_000);
  });

  describe('with OpenID Connect (a real provider on loopback)', () => {
    let provider: TestOpenIdProvider;
    let bot: TestBot;
    beforeAll(async () => {
      provider = await startOpenIdProvider({
        'sub-ana-42': { name: 'Ana Lopez', email: 'ana@example.test' },
        'sub-ben-7': { preferred_username: 'ben', email: 'ben@example.test' },
      });
      // The issuer alone implies HANDOFF_CONSOLE_SIGNIN=oidc.
      bot = await startTestBot(redis.url, {
        HANDOFF_OIDC_ISSUER: provider.issuer,
        HANDOFF_OIDC_CLIENT_ID: provider.clientId,
        HANDOFF_OIDC_CLIENT_SECRET: provider.clientSecret,
      });
      provider.register(`${bot.url}/auth/callback`);
    }, 30_000);
    afterAll(async () => {
      await bot?.close();
      await provider?.close();
    });

    /**
     * The browser's part of the code flow, by hand: the bot's /auth/login, then the
     * provider's redirects, login form and consent form, until the provider sends the
     * browser back to the bot's callback. Returns that callback URL and the state cookie.
     */
    async function throughProvider(login: string): Promise<{ callback: string; stateCookie: string }> {
      const start = await fetch(`${bot.url}/auth/login`, { redirect: 'manual' });
      expect(start.status).toBe(302);
      const state = cookieOf(start, 'handoff_oidc_state')!;
      expect(state.header).toMatch(/; HttpOnly/);
      expect(state.header).toMatch(/; SameSite=Lax/);
      let location = new URL(start.headers.get('location')!);
      expect(location.origin).toBe(provider.issuer);
      expect(location.searchParams.get('code_challenge_method')).toBe('S256');
      expect(location.searchParams.get('nonce')).toBeTruthy();
      expect(location.searchParams.get('redirect_uri')).toBe(`${bot.url}/auth/callback`);
      const jar = new Map<string, string>();
      const keep = (res: Response) => {
        for (const c of res.headers.getSetCookie()) {
          const [pair] = c.split(';');
          const at = pair!.indexOf('=');
          const name = pair!.slice(0, at);
          if (/max-age=0|expires=thu, 01 jan 1970/i.test(c)) jar.delete(name);
          else jar.set(name, pair!.slice(at + 1));
        }
      };
      const cookies = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      for (let hop = 0; hop < 20; hop++) {
        if (location.origin !== provider.issuer) return { callback: location.href, stateCookie: state.pair };
        const res = await fetch(location, { redirect: 'manual', headers: { cookie: cookies() } });
        keep(res);
        if (res.status >= 300 && res.status < 400) {
          location = new URL(res.headers.get('location')!, location);
          continue;
        }
        // A login or consent page: submit its form as a person would.
        const html = await res.text();
        expect(res.status, html).toBe(200);
        const action = /<form[^>]*action="([^"]+)"[^>]*method="post"/i.exec(html)?.[1];
        expect(action, html).toBeDefined();
        const fields = new URLSearchParams();
        for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/?>/g))
          fields.set(m[1]!, m[2]!);
        if (fields.get('prompt') === 'login') {
          fields.set('login', login);
          fields.set('password', 'any password');
        }
        const submitted = await fetch(new URL(action!.replace(/&amp;/g, '&'), location), {
          method: 'POST',
          redirect: 'manual',
          headers: { cookie: cookies(), 'content-type': 'application/x-www-form-urlencoded' },
          body: fields.toString(),
        });
        keep(submitted);
        expect(submitted.status, await submitted.clone().text()).toBeGreaterThanOrEqual(300);
        location = new URL(submitted.headers.get('location')!, location);
      }
      throw new Error('the provider never sent the browser back');
    }

    it('signs a person in through the provider: identity web:oidc:<sub>, name from the claims', async () => {
      const { callback, stateCookie } = await throughProvider('sub-ana-42');
      expect(callback.startsWith(`${bot.url}/auth/callback?`)).toBe(true);
      const done = await fetch(callback, { redirect: 'manual', headers: { cookie: stateCookie } });
      expect(done.status, await done.clone().text()).toBe(302);
      expect(done.headers.get('location')).toBe('/');
      const session = cookieOf(done, 'handoff_session')!;
      expect(session.header).toMatch(/; HttpOnly/);
      expect(session.header).toMatch(/; SameSite=Strict/);
      const me = (await (await fetch(`${bot.url}/api/session`, { headers: { cookie: session.pair } })).json()) as {
        signin: string;
        user: { id: string; name: string };
      };
      expect(me).toMatchObject({ signin: 'oidc', user: { id: 'web:oidc:sub-ana-42', name: 'Ana Lopez' } });

      // What she posts is hers, whatever name the body claims.
      const posted = await new CookieClient(bot.url, session.pair, 'Mallory').post('hello');
      expect(posted.status, posted.body.error).toBe(201);
      expect(posted.body.message?.author.name).toBe('Ana Lopez');

      // The same callback cannot be used twice.
      const replay = await fetch(callback, { redirect: 'manual', headers: { cookie: stateCookie } });
      expect(replay.status).toBe(400);
      expect(await replay.text()).toMatch(/^this sign-in has expired or was already used/);
    }, 60_000);

    it('takes preferred_username when there is no name', async () => {
      const { callback, stateCookie } = await throughProvider('sub-ben-7');
      const done = await fetch(callback, { redirect: 'manual', headers: { cookie: stateCookie } });
      const session = cookieOf(done, 'handoff_session')!;
      const me = (await (await fetch(`${bot.url}/api/session`, { headers: { cookie: session.pair } })).json()) as {
        user: { id: string; name: string };
      };
      expect(me.user).toEqual({ id: 'web:oidc:sub-ben-7', name: 'ben' });
    }, 60_000);

    it('refuses a callback in a browser that did not start the sign-in (login CSRF)', async () => {
      const { callback } = await throughProvider('sub-ana-42');
      const elsewhere = await fetch(callback, { redirect: 'manual' });
      expect(elsewhere.status).toBe(400);
      expect(await elsewhere.text()).toMatch(/^this sign-in was not started in this browser/);
      expect(cookieOf(elsewhere, 'handoff_session')).toBeUndefined();
    }, 60_000);

    it('personal links and bearer tokens sign nobody in under OIDC', async () => {
      const user = await new ConsoleUsers(records).add('Eve');
      expect((await fetch(`${bot.url}/?token=${user.token}`, { redirect: 'manual' })).status).toBe(200); // just the page
      const bearer = await fetch(`${bot.url}/api/console/messages?channel=general`, {
        headers: { authorization: `Bearer ${user.token}` },
      });
      expect(bearer.status).toBe(401);
    });
  });
});

/** A console client that acts as whoever owns `token` (a personal sign-in token). */
class PersonClient extends ConsoleClient {
  constructor(
    url: string,
    private readonly token: string,
    typedName: string,
  ) {
    super(url, typedName);
  }
  protected override headers() {
    return { authorization: `Bearer ${this.token}` };
  }
}

describeDocker('console identities decide approvals (bot + runner, Docker)', () => {
  const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
  let redis: EmbeddedRedis;
  let dataDir: string;
  let records: Redis;
  const running: RunningHandoff[] = [];
  let url: string;
  const people: Record<string, PersonClient> = {};

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'handoff-identity-'));
    redis = await startRedisServer({ dir: join(dataDir, 'redis') });
    records = new Redis(redis.url);
    // Two of the named approvers must approve; the requester may not.
    const policy = join(dataDir, 'policy.yaml');
    await writeFile(
      policy,
      'version: 1\nchannels:\n  "web:*":\n    approvers:\n      users: [web:user:ben, web:user:cleo]\n    quorum: 2\n',
    );
    const env = {
      REDIS_URL: redis.url,
      HANDOFF_PORT: '0',
      HANDOFF_DATA_DIR: dataDir,
      HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
      HANDOFF_POLICY: policy,
      HANDOFF_CONSOLE_SIGNIN: 'tokens',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    };
    const config = loadConfig({ env, file: '/dev/null' });
    const logger = createLogger(config.logLevel, 'handoff-test');
    running.push(await startHandoff({ config, mode: 'runner', logger }));
    const bot = await startHandoff({ config, mode: 'bot', logger });
    running.push(bot);
    url = bot.url!;
    const users = new ConsoleUsers(records);
    for (const name of ['Ana', 'Ben', 'Cleo'])
      people[name] = new PersonClient(url, (await users.add(name)).token, name);
  }, 120_000);

  afterAll(async () => {
    for (const r of running.reverse()) await r.close();
    records?.disconnect();
    await redis?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const stateOf = async (taskId: string) =>
    (JSON.parse((await records.get(`hf:task:${taskId}`)) ?? '{}') as { state?: string }).state;

  it('a requester cannot approve as someone else, and one person cannot give both votes of a quorum of 2', async () => {
    const ana = people.Ana!;
    const posted = await ana.post(
      '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      [{ name: 'sales.csv', path: salesCsv }],
    );
    expect(posted.status, posted.body.error).toBe(201);
    const taskId = posted.body.taskId!;
    const card = await ana.waitForCard(
      posted.body.message!.id,
      (h) => h.includes('card plan') || h.includes('status-failed'),
      120_000,
    );
    const buttons = planButtons(card.html!);

    // Ana claims to be Ben, then the Cyrillic look-alike of herself: she is Ana either way.
    for (const claimed of ['Ben', 'Аna']) {
      const res = await ana.action({ action: 'approve', ...buttons }, claimed);
      expect(res.status, claimed).toBe(403);
      expect(res.body.error).toMatch(/^you cannot approve your own request/);
    }
    // Ben approves, then tries again as "Cleo": still one vote.
    const ben = people.Ben!;
    const first = await ben.action({ action: 'approve', ...buttons });
    expect(first.status, first.body.error).toBe(200);
    const second = await ben.action({ action: 'approve', ...buttons }, 'Cleo');
    expect(second.status).toBe(409);
    expect(second.body.error).toBe('you already approved this plan; it needs 1 more approver(s)');
    expect(await stateOf(taskId)).toBe('awaiting_approval');

    // Only the real Cleo completes the quorum.
    const cleo = await people.Cleo!.action({ action: 'approve', ...buttons });
    expect(cleo.status, cleo.body.error).toBe(200);
    expect(await stateOf(taskId)).not.toBe('awaiting_approval');
    const votes = (JSON.parse((await records.get(`hf:task:${taskId}`))!) as { votes: Array<{ by: { id: string } }> })
      .votes;
    expect(votes.map((v) => v.by.id).sort()).toEqual(['web:user:ben', 'web:user:cleo']);

    // Ana may still cancel her own task, as herself.
    const cancel = await ana.action({ action: 'cancel', taskId }, 'Ben');
    expect(cancel.status, cancel.body.error).toBe(200);
    await ana.waitForCard(posted.body.message!.id, (h) => h.includes('card result'), 120_000);
  }, 300_000);
});
