import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { startHandoff } from '../../src/main.ts';
import { createLogger } from '../../src/observability/index.ts';
import { startRedisServer } from '../../src/storage/index.ts';
import { type FakeAnthropicServer, type FakeReply, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const plan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'Write the greeting the requester asks for into a markdown file.',
        steps: [{ title: 'Ask who to greet, then write the file', actions: ['run_commands', 'create_files'] }],
        deliverables: [{ name: 'greeting.md', type: 'md' }],
      },
    },
  ],
};

describeDocker('the agent asks a question in the thread and a reply answers it (Anthropic API via the SDK)', () => {
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;

  beforeAll(async () => {
    model = await startFakeAnthropic({ apiKey: 'sk-ant-test-key' });
    handoff = await startDevHandoff({ env: { ANTHROPIC_API_KEY: 'sk-ant-test-key', ANTHROPIC_BASE_URL: model.url } });
  });
  afterAll(async () => {
    await handoff?.close();
    await model?.close();
  });

  it('waits for the reply, passes it to the model, and delivers', async () => {
    // Replies follow the conversation, not the order of requests: a request sent again
    // (a retried call, a run resumed on another worker) gets the same answer.
    model.setHandler((body) => {
      const tools = (body.tools as Array<{ name: string }> | undefined) ?? [];
      if (tools.some((t) => t.name === 'submit_plan')) return plan;
      const blocks = (body.messages as Array<{ role: string; content: unknown }>).flatMap((m) =>
        Array.isArray(m.content) ? (m.content as Array<{ type: string; name?: string; content?: unknown }>) : [],
      );
      const lastUse = blocks.filter((b) => b.type === 'tool_use').at(-1)?.name;
      if (lastUse === undefined)
        return {
          content: [{ type: 'tool_use', name: 'ask_humans', input: { question: 'Who should the greeting address?' } }],
        };
      if (lastUse === 'ask_humans') {
        const said = String(blocks.filter((b) => b.type === 'tool_result').at(-1)?.content ?? '');
        return {
          content: [
            {
              type: 'tool_use',
              name: 'run_command',
              input: {
                command: `printf '# Hello\\n\\n%s\\n' '${said.includes('Dana') ? 'Dana' : 'nobody'}' > /workspace/out/greeting.md`,
                step: 1,
              },
            },
          ],
        };
      }
      if (lastUse === 'run_command')
        return {
          content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/greeting.md' } }],
        };
      return { content: [{ type: 'text', text: 'Wrote greeting.md for Dana.' }] };
    });
    const client = new ConsoleClient(handoff.url, 'Ana');
    const posted = await client.post('@handoff write a greeting');
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    expect(card.html).toContain('model claude-');
    await client.action({ action: 'approve', ...planButtons(card.html!) });

    await client.waitForCard(thread, (h) => h.includes('Who should the greeting address?'), 60_000);
    const reply = await client.post('Dana, please', [], thread);
    expect(reply.status).toBe(201);

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    // The reply reached the model as the question's tool result.
    const answers = model.messageRequests.flatMap((r) =>
      ((r.body.messages as Array<{ content: unknown }> | undefined) ?? []).flatMap((m) =>
        Array.isArray(m.content) ? (m.content as Array<{ type: string; content?: unknown }>) : [],
      ),
    );
    expect(answers.some((b) => b.type === 'tool_result' && String(b.content).includes('Dana, please'))).toBe(true);
    expect(result.html).toContain('Wrote greeting.md for Dana.');
    const [file] = links(result.html!);
    const text = await (await fetch(new URL(file!.href, handoff.url))).text();
    expect(text).toContain('Hello');
    expect(text).toContain('Dana');
    // The key went to the model API, and only there.
    expect(model.messageRequests.length).toBeGreaterThanOrEqual(5);
  });
});

it('under `handoff bot` the shared console token alone is refused: it would give nobody an identity', async () => {
  const dir = `${process.env.TMPDIR ?? '/tmp'}/handoff-bot-${randomBytes(4).toString('hex')}`;
  const redis = await startRedisServer({ dir });
  const env = {
    REDIS_URL: redis.url,
    HANDOFF_PORT: '0',
    HANDOFF_DATA_DIR: dir,
    HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
    HANDOFF_CONSOLE_TOKEN: randomBytes(24).toString('base64url'),
    LOG_LEVEL: 'silent',
  };
  try {
    const config = loadConfig({ env, file: '/dev/null' });
    await expect(startHandoff({ config, mode: 'bot', logger: createLogger('silent') })).rejects.toThrow(
      /HANDOFF_CONSOLE_TOKEN is one shared secret that tells nobody apart.*set HANDOFF_CONSOLE_SIGNIN=tokens.*HANDOFF_OIDC_ISSUER/,
    );
    // Without any sign-in method the console is off: nothing of it answers.
    const { HANDOFF_CONSOLE_TOKEN: _token, ...noConsole } = env;
    const off = await startHandoff({
      config: loadConfig({ env: noConsole, file: '/dev/null' }),
      mode: 'bot',
      logger: createLogger('silent'),
    });
    try {
      expect((await fetch(`${off.url}/api/session`)).status).toBe(404);
      expect((await fetch(`${off.url}/`)).status).toBe(404);
    } finally {
      await off.close();
    }
    // With a sign-in method the bot starts, and the shared token opens nothing.
    const withSignIn = loadConfig({ env: { ...env, HANDOFF_CONSOLE_SIGNIN: 'tokens' }, file: '/dev/null' });
    const bot = await startHandoff({ config: withSignIn, mode: 'bot', logger: createLogger('silent') });
    try {
      const bearer = await fetch(`${bot.url}/api/session`, {
        headers: { authorization: `Bearer ${env.HANDOFF_CONSOLE_TOKEN}` },
      });
      expect(bearer.status).toBe(401);
      const link = await fetch(`${bot.url}/?token=${env.HANDOFF_CONSOLE_TOKEN}`, { redirect: 'manual' });
      expect(link.status).toBe(401);
      expect(link.headers.get('set-cookie')).toBeNull();
      // Health stays open for load balancers.
      expect((await fetch(`${bot.url}/healthz`)).status).toBe(200);
    } finally {
      await bot.close();
    }
  } finally {
    await redis.stop();
  }
});

it('`handoff dev` on a non-loopback address refuses to start without the console token', async () => {
  const dir = `${process.env.TMPDIR ?? '/tmp'}/handoff-dev-${randomBytes(4).toString('hex')}`;
  const redis = await startRedisServer({ dir });
  const env = {
    REDIS_URL: redis.url,
    HANDOFF_HOST: '0.0.0.0',
    HANDOFF_PORT: '0',
    HANDOFF_DATA_DIR: dir,
    LOG_LEVEL: 'silent',
  };
  try {
    await expect(
      startHandoff({ config: loadConfig({ env, file: '/dev/null' }), mode: 'dev', logger: createLogger('silent') }),
    ).rejects.toThrow(/listens on 0\.0\.0\.0, which is not a loopback address.*set HANDOFF_CONSOLE_TOKEN/);
  } finally {
    await redis.stop();
  }
});
