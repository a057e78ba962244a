import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BedrockProvider, type BedrockProviderOptions } from '../../src/agent/model/bedrock.ts';
import type { MessageParam, ModelRequest, ToolDefinition } from '../../src/agent/model/provider.ts';
import { loadConfig } from '../../src/config/index.ts';
import { ErrorCodes, HandoffError } from '../../src/core/index.ts';
import { modelProviderFromConfig } from '../../src/model-provider.ts';
import { cacheBreakpoints } from '../fakes/anthropic-server.ts';
import { exampleCredentials, type FakeBedrockServer, startFakeBedrock, withAwsEnv } from '../fakes/bedrock-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const model = 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0';
const region = 'eu-central-1';

const tools: ToolDefinition[] = [
  {
    name: 'read_file',
    description: 'Read a file.',
    input_schema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'submit_plan',
    description: 'Submit the plan.',
    input_schema: { type: 'object', properties: { summary: { type: 'string' } }, required: ['summary'] },
  },
];

function request(messages: MessageParam[], extra: Partial<ModelRequest> = {}): ModelRequest {
  return { system: [{ type: 'text', text: 'You plan office tasks.' }], tools, messages, maxTokens: 512, ...extra };
}

let fake: FakeBedrockServer;

beforeEach(async () => {
  fake = await startFakeBedrock({ region, models: [model] });
});
afterEach(async () => {
  await fake.close();
});

function provider(options: Partial<BedrockProviderOptions> = {}): BedrockProvider {
  return new BedrockProvider({
    model,
    region,
    baseURL: fake.url,
    credentials: exampleCredentials,
    maxRetries: 0,
    ...options,
  });
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

describe('BedrockProvider against the fake Bedrock Runtime, through @anthropic-ai/bedrock-sdk', () => {
  it('plans with a forced tool, then answers a tool_result: InvokeModel bodies, SigV4 scope and usage as Bedrock has them', async () => {
    fake.enqueue(
      {
        content: [{ type: 'tool_use', id: 'toolu_bdrk_01', name: 'read_file', input: { path: 'sales.csv' } }],
        usage: { input_tokens: 40, output_tokens: 9, cache_creation_input_tokens: 1200, cache_read_input_tokens: 0 },
      },
      {
        content: [{ type: 'tool_use', id: 'toolu_bdrk_02', name: 'submit_plan', input: { summary: 'Sum by region.' } }],
        usage: { input_tokens: 12, output_tokens: 20, cache_creation_input_tokens: 30, cache_read_input_tokens: 1200 },
      },
    );
    const p = provider();
    const messages: MessageParam[] = [{ role: 'user', content: 'Summarise sales.csv by region' }];
    const first = await p.createMessage(request(messages));
    expect(first.stopReason).toBe('tool_use');
    expect(first.content[0]).toMatchObject({ type: 'tool_use', name: 'read_file', input: { path: 'sales.csv' } });
    expect(first.usage).toEqual({ inputTokens: 40, outputTokens: 9, cacheReadTokens: 0, cacheWriteTokens: 1200 });

    messages.push({ role: 'assistant', content: first.content });
    messages.push({
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: 'toolu_bdrk_01', content: 'region,total' }],
    });
    const second = await p.createMessage(request(messages, { toolChoice: { type: 'tool', name: 'submit_plan' } }));
    expect(second.content[0]).toMatchObject({
      type: 'tool_use',
      name: 'submit_plan',
      input: { summary: 'Sum by region.' },
    });
    expect(second.usage).toEqual({ inputTokens: 12, outputTokens: 20, cacheReadTokens: 1200, cacheWriteTokens: 30 });

    expect(fake.messageRequests).toHaveLength(2);
    for (const sent of fake.messageRequests) {
      // The model is in the path, never in the body; the API version is in the body, not a header.
      expect(sent.path).toBe(`/model/${model}/invoke`);
      expect(sent.modelId).toBe(model);
      expect(sent.body).not.toHaveProperty('model');
      expect(sent.body).not.toHaveProperty('stream');
      expect(sent.body.anthropic_version).toEqual(expect.any(String));
      expect(sent.headers['anthropic-version']).toBeUndefined();
      expect(sent.headers['x-api-key']).toBeUndefined();
      expect(sent.body.max_tokens).toBe(512);
    }
    // Signed for the configured region and the bedrock service, with the example key id.
    expect(fake.scopes).toEqual([
      expect.objectContaining({ accessKeyId: exampleCredentials.accessKeyId, region, service: 'bedrock' }),
      expect.objectContaining({ accessKeyId: exampleCredentials.accessKeyId, region, service: 'bedrock' }),
    ]);
    const [, second_] = fake.messageRequests;
    expect(second_!.body.tool_choice).toEqual({ type: 'tool', name: 'submit_plan' });
    // The same prompt-cache breakpoints as on the Anthropic API: last tool, last system block, user turns.
    expect(cacheBreakpoints(second_!.body)).toEqual([
      'tools[1]',
      'system[0]',
      'messages[0].content[0]',
      'messages[2].content[0]',
    ]);
  });

  it('refuses web search before sending anything: Bedrock does not offer it', async () => {
    const err = await failure(
      provider().createMessage(
        request([{ role: 'user', content: 'Look up the VAT rate' }], {
          serverTools: [{ type: 'web_search_20250305', name: 'web_search', allowed_domains: ['europa.eu'] }],
        }),
      ),
    );
    expect(err.code).toBe(ErrorCodes.modelFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/Web search is not available on Amazon Bedrock/);
    expect(fake.requests).toHaveLength(0);
  });

  it('names an unknown model id, terminal, with AWS’s own words', async () => {
    const err = await failure(
      provider({ model: 'anthropic.claude-nope-v9:0' }).createMessage(request([{ role: 'user', content: 'hi' }])),
    );
    expect(fake.requests[0]?.errorType).toBe('ValidationException');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(
      /Amazon Bedrock in eu-central-1 returned 400 ValidationException: The provided model identifier is invalid/,
    );
  });

  it('a wrong secret key fails the signature check, and the secret is never in the error', async () => {
    const secretAccessKey = 'not-the-right-secret-0123456789abcdefghij';
    const err = await failure(
      provider({ credentials: { accessKeyId: exampleCredentials.accessKeyId, secretAccessKey } }).createMessage(
        request([{ role: 'user', content: 'hi' }]),
      ),
    );
    expect(fake.requests[0]?.status).toBe(403);
    expect(err.message).toMatch(/403 InvalidSignatureException: The request signature we calculated does not match/);
    expect(err.message).not.toContain(secretAccessKey);
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(secretAccessKey);
  });

  it('an aborted request is a cancellation, not a model failure', async () => {
    fake.enqueue({ content: [{ type: 'text', text: 'late' }], delayMs: 5_000 });
    const controller = new AbortController();
    const pending = provider().createMessage(request([{ role: 'user', content: 'hi' }]), controller.signal);
    controller.abort();
    const err = await failure(pending);
    expect(err.code).toBe(ErrorCodes.cancelled);
  });
});

describe('HANDOFF_MODEL_PROVIDER=bedrock settings', () => {
  const config = (env: Record<string, string>) =>
    loadConfig({ env: { HANDOFF_MODEL_PROVIDER: 'bedrock', HANDOFF_MODEL: model, ...env }, file: '/dev/null' });

  it('fails at start without a region, or with a model id Bedrock does not use', () => {
    expect(() => modelProviderFromConfig(config({}))).toThrow(/HANDOFF_MODEL_PROVIDER=bedrock needs AWS_REGION/);
    expect(() => modelProviderFromConfig(config({ AWS_REGION: region, HANDOFF_MODEL: 'claude-sonnet-5-5' }))).toThrow(
      /HANDOFF_MODEL=claude-sonnet-5-5 is not an Amazon Bedrock model id/,
    );
    expect(() => modelProviderFromConfig(config({ AWS_REGION: 'Frankfurt' }))).toThrow(
      /AWS_REGION=Frankfurt is not an AWS region Bedrock can be called in; set HANDOFF_BEDROCK_REGION/,
    );
    expect(() => loadConfig({ env: { HANDOFF_BEDROCK_REGION: 'Frankfurt' }, file: '/dev/null' })).toThrow(
      /HANDOFF_BEDROCK_REGION/,
    );
    const p = modelProviderFromConfig(config({ AWS_REGION: region }));
    expect(p).toBeInstanceOf(BedrockProvider);
    expect(p).toMatchObject({ name: 'bedrock', model, demo: false });
  });
});

describeDocker('a whole task with HANDOFF_MODEL_PROVIDER=bedrock (the fake Bedrock, the real SDK, Docker)', () => {
  let bedrock: FakeBedrockServer;
  let handoff: TestHandoff;
  let restoreEnv: () => void;
  let policyDir: string | undefined;

  beforeAll(async () => {
    bedrock = await startFakeBedrock({ region, models: [model] });
    restoreEnv = withAwsEnv({
      AWS_ACCESS_KEY_ID: exampleCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: exampleCredentials.secretAccessKey,
    });
    // Web search allowed in the console's channels, for the refusal below.
    policyDir = await mkdtemp(join(tmpdir(), 'handoff-bedrock-policy-'));
    const policy = join(policyDir, 'policy.yaml');
    await writeFile(
      policy,
      'version: 1\nchannels:\n  "web:*":\n    webSearch: true\n    egressDomains: [docs.example.com]\n',
    );
    handoff = await startDevHandoff({
      env: {
        HANDOFF_POLICY: policy,
        HANDOFF_MODEL_PROVIDER: 'bedrock',
        HANDOFF_MODEL: model,
        AWS_REGION: region,
        ANTHROPIC_BEDROCK_BASE_URL: bedrock.url,
      },
    });
  });
  afterAll(async () => {
    await handoff?.close();
    await bedrock?.close();
    restoreEnv?.();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it('plans, runs and delivers through Bedrock', async () => {
    bedrock.setHandler((body) => {
      const names = ((body.tools as Array<{ name: string }> | undefined) ?? []).map((t) => t.name);
      if (names.includes('submit_plan')) {
        return {
          content: [
            {
              type: 'tool_use',
              name: 'submit_plan',
              input: {
                summary: 'Write a short note into a markdown file.',
                steps: [{ title: 'Write the note', actions: ['run_commands', 'create_files'] }],
                deliverables: [{ name: 'note.md', type: 'md' }],
              },
            },
          ],
        };
      }
      const blocks = (body.messages as Array<{ content: unknown }>).flatMap((m) =>
        Array.isArray(m.content) ? (m.content as Array<{ type: string; name?: string }>) : [],
      );
      const lastUse = blocks.filter((b) => b.type === 'tool_use').at(-1)?.name;
      if (lastUse === undefined) {
        return {
          content: [
            {
              type: 'tool_use',
              name: 'run_command',
              input: { command: "printf '# Note\\n\\nWritten via Bedrock\\n' > /workspace/out/note.md", step: 1 },
            },
          ],
          usage: { input_tokens: 900, output_tokens: 40, cache_creation_input_tokens: 800, cache_read_input_tokens: 0 },
        };
      }
      if (lastUse === 'run_command') {
        return { content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/note.md' } }] };
      }
      return { content: [{ type: 'text', text: 'Wrote note.md.' }] };
    });
    const client = new ConsoleClient(handoff.url, 'Ana');
    const posted = await client.post('@handoff write a short note');
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    expect(card.html).toContain(model);
    expect(card.html).not.toContain('demo model');
    // With a policy file the requester may not approve their own plan: Bo does.
    const bo = new ConsoleClient(handoff.url, 'Bo');
    expect((await bo.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);

    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    expect(result.html).toContain('Wrote note.md.');
    const [file] = links(result.html!);
    const text = await (await fetch(new URL(file!.href, handoff.url))).text();
    expect(text).toContain('Written via Bedrock');
    // Every model call went to Bedrock, signed for the region, with the model only in the path.
    expect(bedrock.messageRequests.length).toBeGreaterThanOrEqual(4);
    expect(bedrock.requests.every((r) => r.status === 200)).toBe(true);
    expect(bedrock.scopes.every((s) => s?.region === region && s.accessKeyId === exampleCredentials.accessKeyId)).toBe(
      true,
    );
    expect(bedrock.messageRequests.every((r) => !('model' in r.body))).toBe(true);
  });
  it('a channel that allows web search gets plans without it on Bedrock: never offered, never sent', async () => {
    bedrock.setHandler((body) => {
      const names = ((body.tools as Array<{ name: string }> | undefined) ?? []).map((t) => t.name);
      if (names.includes('submit_plan')) {
        return {
          content: [
            {
              type: 'tool_use',
              name: 'submit_plan',
              input: {
                summary: 'Look up the current VAT rates and write them down.',
                steps: [{ title: 'Read and write', actions: ['network_egress', 'create_files'] }],
                deliverables: [{ name: 'vat.md', type: 'md' }],
                egressDomains: ['docs.example.com'],
              },
            },
          ],
        };
      }
      return { content: [{ type: 'text', text: 'Nothing to do.' }] };
    });
    const before = bedrock.messageRequests.length;
    const client = new ConsoleClient(handoff.url, 'Ana');
    const posted = await client.post('@handoff look up the VAT rates');
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    // The domain is offered for web_fetch; web search is not, though the policy allows it.
    expect(card.html).toContain('docs.example.com');
    expect(card.html).not.toContain('web search');
    const bo = new ConsoleClient(handoff.url, 'Bo');
    expect((await bo.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);
    await client.waitForCard(thread, (h) => h.includes('card result'), 120_000);

    const asked = bedrock.messageRequests.slice(before);
    expect(asked.length).toBeGreaterThanOrEqual(2);
    const prompts = asked.map((r) => JSON.stringify(r.body));
    expect(prompts.some((p) => p.includes('docs.example.com'))).toBe(true);
    expect(prompts.filter((p) => /web search is limited|web_search/.test(p))).toEqual([]);
  });
});
