import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AnthropicProvider, type AnthropicProviderOptions } from '../../src/agent/model/anthropic.ts';
import type { MessageParam, ModelRequest, ToolDefinition } from '../../src/agent/model/provider.ts';
import { ErrorCodes, HandoffError } from '../../src/core/index.ts';
import {
  cacheBreakpoints,
  type FakeAnthropicServer,
  presentedApiKey,
  startFakeAnthropic,
} from '../fakes/anthropic-server.ts';

const apiKey = 'sk-ant-test-0123456789-do-not-leak';
const model = 'claude-test-model';

const tools: ToolDefinition[] = [
  {
    name: 'run_command',
    description: 'Run a shell command in the sandbox.',
    input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] },
  },
  {
    name: 'read_file',
    description: 'Read a file.',
    input_schema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'deliver_artifact',
    description: 'Deliver a file to the requester.',
    input_schema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
];

const system: ModelRequest['system'] = [
  { type: 'text', text: 'You are Handoff, a careful coworker.' },
  { type: 'text', text: 'Task: summarise sales.csv into report.md.' },
];

function request(messages: MessageParam[], extra: Partial<ModelRequest> = {}): ModelRequest {
  return { system, tools, messages, maxTokens: 1024, ...extra };
}

let fake: FakeAnthropicServer;

beforeEach(async () => {
  fake = await startFakeAnthropic({ apiKey });
});

afterEach(async () => {
  await fake.close();
});

function provider(options: Partial<AnthropicProviderOptions> = {}): AnthropicProvider {
  return new AnthropicProvider({ apiKey, baseURL: fake.url, model, ...options });
}

async function failure(promise: Promise<unknown>): Promise<HandoffError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(HandoffError);
    return err as HandoffError;
  }
  throw new Error('expected the call to fail');
}

describe('AnthropicProvider against the fake Messages API', () => {
  it('returns a text reply and sends the request the API expects', async () => {
    fake.enqueue({ content: [{ type: 'text', text: 'Here is your summary.' }] });

    const res = await provider().createMessage(request([{ role: 'user', content: 'Summarise sales.csv' }]));

    expect(res.content).toEqual([expect.objectContaining({ type: 'text', text: 'Here is your summary.' })]);
    expect(res.stopReason).toBe('end_turn');
    expect(res.model).toBe(model);

    const sent = fake.requests[0]!;
    expect(sent.status).toBe(200);
    expect(presentedApiKey(sent)).toBe(apiKey);
    expect(sent.headers['anthropic-version']).toBeDefined();
    expect(sent.body).toMatchObject({ model, max_tokens: 1024 });
    expect(sent.body.tool_choice).toBeUndefined();
    expect(sent.body.tools).toEqual([
      expect.objectContaining({ name: 'run_command' }),
      expect.objectContaining({ name: 'read_file' }),
      expect.objectContaining({ name: 'deliver_artifact' }),
    ]);
  });

  it('maps a tool_use reply and passes tool_choice through', async () => {
    fake.enqueue({
      content: [
        { type: 'text', text: 'Let me look at the file.' },
        { type: 'tool_use', id: 'toolu_01', name: 'read_file', input: { path: 'sales.csv' } },
      ],
    });

    const res = await provider().createMessage(
      request([{ role: 'user', content: 'Summarise sales.csv' }], { toolChoice: { type: 'tool', name: 'read_file' } }),
    );

    expect(res.stopReason).toBe('tool_use');
    expect(res.content[1]).toMatchObject({
      type: 'tool_use',
      id: 'toolu_01',
      name: 'read_file',
      input: { path: 'sales.csv' },
    });
    expect(fake.requests[0]?.body.tool_choice).toEqual({ type: 'tool', name: 'read_file' });
  });

  it('maps usage, including cache reads and writes', async () => {
    fake.enqueue({
      content: [{ type: 'text', text: 'ok' }],
      usage: { input_tokens: 12, output_tokens: 34, cache_read_input_tokens: 5600, cache_creation_input_tokens: 789 },
    });

    const res = await provider().createMessage(request([{ role: 'user', content: 'hi' }]));

    expect(res.usage).toEqual({ inputTokens: 12, outputTokens: 34, cacheReadTokens: 5600, cacheWriteTokens: 789 });
  });

  it('places at most 4 cache breakpoints, keeps tools and system byte-stable, and leaves the caller arrays alone', async () => {
    fake.setHandler(() => ({
      content: [{ type: 'tool_use', name: 'run_command', input: { command: 'wc -l sales.csv' } }],
    }));
    const p = provider();
    const messages: MessageParam[] = [{ role: 'user', content: 'Summarise sales.csv' }];
    const before = structuredClone({ system, tools });

    // Three turns of a real loop: each reply's tool_use is answered with a tool_result.
    for (let turn = 0; turn < 3; turn++) {
      const snapshot = structuredClone(messages);
      const res = await p.createMessage(request(messages));
      expect(messages).toEqual(snapshot);
      const toolUse = res.content.find((b) => b.type === 'tool_use');
      if (toolUse?.type !== 'tool_use') throw new Error('expected tool_use');
      messages.push({ role: 'assistant', content: res.content });
      messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: '42' }] });
    }
    expect({ system, tools }).toEqual(before);

    const bodies = fake.requests.map((r) => r.body);
    expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    expect(cacheBreakpoints(bodies[0]!)).toEqual(['tools[2]', 'system[1]', 'messages[0].content[0]']);
    // Later turns: the newest user turn (written) and the one before it (read from the last turn).
    expect(cacheBreakpoints(bodies[1]!)).toEqual([
      'tools[2]',
      'system[1]',
      'messages[0].content[0]',
      'messages[2].content[0]',
    ]);
    expect(cacheBreakpoints(bodies[2]!)).toEqual([
      'tools[2]',
      'system[1]',
      'messages[2].content[0]',
      'messages[4].content[0]',
    ]);
    for (const body of bodies) {
      expect(JSON.stringify(body.tools)).toBe(JSON.stringify(bodies[0]!.tools));
      expect(JSON.stringify(body.system)).toBe(JSON.stringify(bodies[0]!.system));
    }
  });

  it('drops stale breakpoints the caller left on old messages so the request stays under the limit', async () => {
    fake.enqueue({ content: [{ type: 'text', text: 'done' }] });
    const ephemeral = { type: 'ephemeral' } as const;
    const messages: MessageParam[] = [
      { role: 'user', content: [{ type: 'text', text: 'one', cache_control: ephemeral }] },
      { role: 'assistant', content: [{ type: 'text', text: 'two', cache_control: ephemeral }] },
      { role: 'user', content: [{ type: 'text', text: 'three', cache_control: ephemeral }] },
      { role: 'assistant', content: [{ type: 'text', text: 'four', cache_control: ephemeral }] },
      { role: 'user', content: [{ type: 'text', text: 'five' }] },
    ];

    await provider().createMessage(request(messages));

    expect(fake.requests[0]?.status).toBe(200);
    expect(cacheBreakpoints(fake.requests[0]!.body)).toEqual([
      'tools[2]',
      'system[1]',
      'messages[2].content[0]',
      'messages[4].content[0]',
    ]);
  });

  it('retries a 429 that says retry-after: 0, then succeeds', async () => {
    fake.enqueue(
      {
        status: 429,
        error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your rate limit.' },
        headers: { 'retry-after': '0' },
      },
      { content: [{ type: 'text', text: 'made it' }] },
    );

    const res = await provider().createMessage(request([{ role: 'user', content: 'hi' }]));

    expect(res.content[0]).toMatchObject({ type: 'text', text: 'made it' });
    expect(fake.requests.map((r) => r.status)).toEqual([429, 200]);
  });

  it('reports a wrong key as a non-retryable model failure that does not contain the key', async () => {
    const wrongKey = 'sk-ant-wrong-key-9876543210';
    const err = await failure(provider({ apiKey: wrongKey }).createMessage(request([{ role: 'user', content: 'hi' }])));

    expect(err.code).toBe(ErrorCodes.modelFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('401');
    expect(err.message).toContain('authentication_error');
    expect(err.message).not.toContain(wrongKey);
    expect(fake.requests).toHaveLength(1);
  });

  it('scrubs the key when the server echoes it back', async () => {
    fake.enqueue({ status: 403, error: { type: 'permission_error', message: `key ${apiKey} may not use this model` } });

    const err = await failure(provider().createMessage(request([{ role: 'user', content: 'hi' }])));

    expect(err.retryable).toBe(false);
    expect(err.message).toContain('permission_error');
    expect(err.message).toContain('[redacted]');
    expect(JSON.stringify({ message: err.message, stack: err.stack, cause: String(err.cause) })).not.toContain(apiKey);
  });

  it('gives up on repeated 500s with a retryable error', async () => {
    fake.setHandler(() => ({ status: 500, error: { type: 'api_error', message: 'Internal server error' } }));

    const err = await failure(provider({ maxRetries: 1 }).createMessage(request([{ role: 'user', content: 'hi' }])));

    expect(err.code).toBe(ErrorCodes.modelFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('500');
    expect(fake.requests.map((r) => r.status)).toEqual([500, 500]);
  });

  it('treats 529 overloaded as retryable', async () => {
    fake.enqueue({ status: 529, error: { type: 'overloaded_error', message: 'Overloaded' } });

    const err = await failure(provider({ maxRetries: 0 }).createMessage(request([{ role: 'user', content: 'hi' }])));

    expect(err.retryable).toBe(true);
    expect(err.message).toContain('overloaded_error');
  });

  it('treats an unreachable API as a retryable connection failure', async () => {
    const url = fake.url;
    await fake.close();

    const err = await failure(
      new AnthropicProvider({ apiKey, baseURL: url, model, maxRetries: 0 }).createMessage(
        request([{ role: 'user', content: 'hi' }]),
      ),
    );

    expect(err.code).toBe(ErrorCodes.modelFailed);
    expect(err.retryable).toBe(true);
  });

  it('surfaces an abort mid-request as cancelled, and the server sees the client go away', async () => {
    fake.enqueue({ content: [{ type: 'text', text: 'too late' }], delayMs: 10_000 });
    const controller = new AbortController();
    const started = Date.now();

    const pending = provider().createMessage(request([{ role: 'user', content: 'hi' }]), controller.signal);
    await expect.poll(() => fake.requests.length).toBe(1);
    controller.abort();
    const err = await failure(pending);

    expect(err.code).toBe(ErrorCodes.cancelled);
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect.poll(() => fake.requests[0]?.aborted).toBe(true);
    expect(fake.requests).toHaveLength(1);
  });

  it('rethrows the HandoffError an upstream timeout aborted with', async () => {
    fake.enqueue({ content: [{ type: 'text', text: 'too late' }], delayMs: 10_000 });
    const controller = new AbortController();
    const reason = new HandoffError(ErrorCodes.runTimeout, 'The run took longer than its 30 minute limit.');

    const pending = provider().createMessage(request([{ role: 'user', content: 'hi' }]), controller.signal);
    await expect.poll(() => fake.requests.length).toBe(1);
    controller.abort(reason);

    await expect(pending).rejects.toBe(reason);
  });

  it('surfaces a broken transcript as a non-retryable 400 without retrying', async () => {
    fake.enqueue({ content: [{ type: 'text', text: 'never sent' }] });
    const messages: MessageParam[] = [
      { role: 'user', content: 'Summarise sales.csv' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_real', name: 'read_file', input: { path: 'a' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_other', content: 'x' }] },
    ];

    const err = await failure(provider().createMessage(request(messages)));

    expect(err.code).toBe(ErrorCodes.modelFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('400 invalid_request_error');
    expect(err.message).toContain('toolu_other');
    expect(fake.requests.map((r) => r.status)).toEqual([400]);
    expect(fake.pending).toBe(1);
  });

  it('rejects consecutive turns of the same role', async () => {
    const err = await failure(
      provider().createMessage(
        request([
          { role: 'user', content: 'one' },
          { role: 'user', content: 'two' },
        ]),
      ),
    );

    expect(err.retryable).toBe(false);
    expect(err.message).toContain('alternate');
  });
});
