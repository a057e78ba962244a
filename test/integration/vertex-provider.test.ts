import { OAuth2Client } from 'google-auth-library';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MessageParam, ModelRequest, ToolDefinition } from '../../src/agent/model/provider.ts';
import { VertexProvider, type VertexProviderOptions } from '../../src/agent/model/vertex.ts';
import { loadConfig } from '../../src/config/index.ts';
import { HandoffError } from '../../src/core/index.ts';
import { modelProviderFromConfig } from '../../src/model-provider.ts';
import { cacheBreakpoints } from '../fakes/anthropic-server.ts';
import { type FakeVertexServer, startFakeVertex } from '../fakes/vertex-server.ts';

const model = 'claude-sonnet-4-5@20250929';
const projectId = 'handoff-test-project';
const region = 'europe-west1';
const accessToken = 'ya29.fake-token-for-tests';

/** A Google auth client holding a fixed, unexpired token: it never calls a token endpoint. */
function fixedToken(token: string): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token, expiry_date: Date.now() + 3_600_000, token_type: 'Bearer' });
  return client;
}

const tools: ToolDefinition[] = [
  {
    name: 'list_files',
    description: 'List the input files.',
    input_schema: { type: 'object', properties: {} },
  },
  {
    name: 'submit_plan',
    description: 'Submit the plan.',
    input_schema: { type: 'object', properties: { summary: { type: 'string' } }, required: ['summary'] },
  },
];

function request(messages: MessageParam[], extra: Partial<ModelRequest> = {}): ModelRequest {
  return { system: [{ type: 'text', text: 'You plan office tasks.' }], tools, messages, maxTokens: 256, ...extra };
}

let fake: FakeVertexServer;

beforeEach(async () => {
  fake = await startFakeVertex({ projectId, accessToken, locations: { [region]: [model], 'us-east5': [] } });
});
afterEach(async () => {
  await fake.close();
});

function provider(options: Partial<VertexProviderOptions> = {}): VertexProvider {
  return new VertexProvider({
    model,
    projectId,
    region,
    baseURL: fake.url,
    authClient: fixedToken(accessToken),
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

describe('VertexProvider against the fake Vertex AI endpoint, through @anthropic-ai/vertex-sdk', () => {
  it('a planning round trip: rawPredict on the project, location and model; bearer token; usage mapped', async () => {
    fake.enqueue(
      {
        content: [{ type: 'tool_use', id: 'toolu_vrtx_01', name: 'list_files', input: {} }],
        usage: { input_tokens: 30, output_tokens: 5, cache_creation_input_tokens: 700, cache_read_input_tokens: 0 },
      },
      {
        content: [
          { type: 'tool_use', id: 'toolu_vrtx_02', name: 'submit_plan', input: { summary: 'One sheet per region.' } },
        ],
        usage: { input_tokens: 8, output_tokens: 15, cache_creation_input_tokens: 0, cache_read_input_tokens: 700 },
      },
    );
    const p = provider();
    const messages: MessageParam[] = [{ role: 'user', content: 'Split sales.csv by region' }];
    const first = await p.createMessage(request(messages));
    expect(first.usage).toEqual({ inputTokens: 30, outputTokens: 5, cacheReadTokens: 0, cacheWriteTokens: 700 });
    messages.push({ role: 'assistant', content: first.content });
    messages.push({
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_01', content: 'sales.csv' }],
    });
    const second = await p.createMessage(request(messages, { toolChoice: { type: 'tool', name: 'submit_plan' } }));
    expect(second.stopReason).toBe('tool_use');
    expect(second.content[0]).toMatchObject({ name: 'submit_plan', input: { summary: 'One sheet per region.' } });
    expect(second.usage).toEqual({ inputTokens: 8, outputTokens: 15, cacheReadTokens: 700, cacheWriteTokens: 0 });

    expect(fake.messageRequests).toHaveLength(2);
    for (const sent of fake.messageRequests) {
      expect(sent.path).toBe(
        `/v1/projects/${projectId}/locations/${region}/publishers/anthropic/models/${model}:rawPredict`,
      );
      expect(sent.headers.authorization).toBe(`Bearer ${accessToken}`);
      expect(sent.body).not.toHaveProperty('model');
      expect(sent.body.anthropic_version).toEqual(expect.any(String));
      expect(sent.headers['anthropic-version']).toBeUndefined();
    }
    const body = fake.messageRequests[1]!.body;
    expect(body.tool_choice).toEqual({ type: 'tool', name: 'submit_plan' });
    expect(cacheBreakpoints(body)).toEqual([
      'tools[1]',
      'system[0]',
      'messages[0].content[0]',
      'messages[2].content[0]',
    ]);
  });

  it('passes web search through: Vertex AI offers it for Claude', async () => {
    fake.enqueue({ content: [{ type: 'text', text: 'The rate is 20%.' }] });
    await provider().createMessage(
      request([{ role: 'user', content: 'Look up the VAT rate' }], {
        serverTools: [{ type: 'web_search_20250305', name: 'web_search', allowed_domains: ['europa.eu'] }],
      }),
    );
    expect(fake.messageRequests[0]?.body.tools).toContainEqual(
      expect.objectContaining({ type: 'web_search_20250305', allowed_domains: ['europa.eu'] }),
    );
  });

  it('names a model the location does not offer (404, Google’s words) and a refused token (401)', async () => {
    const missing = await failure(
      provider({ region: 'us-east5' }).createMessage(request([{ role: 'user', content: 'hi' }])),
    );
    expect(missing.message).toMatch(
      /Vertex AI in us-east5 \(project handoff-test-project\) returned 404 NOT_FOUND: Publisher Model/,
    );
    expect(missing.retryable).toBe(false);

    const refused = await failure(
      provider({ authClient: fixedToken('ya29.someone-else') }).createMessage(
        request([{ role: 'user', content: 'hi' }]),
      ),
    );
    expect(refused.message).toMatch(/returned 401 UNAUTHENTICATED/);
    expect(refused.message).not.toContain('ya29.someone-else');
  });
});

describe('HANDOFF_MODEL_PROVIDER=vertex settings', () => {
  it('fails at start naming what is missing, and refuses a Bedrock model id', () => {
    const config = (env: Record<string, string>) =>
      loadConfig({ env: { HANDOFF_MODEL_PROVIDER: 'vertex', HANDOFF_MODEL: model, ...env }, file: '/dev/null' });
    expect(() => modelProviderFromConfig(config({}))).toThrow(
      /HANDOFF_MODEL_PROVIDER=vertex needs ANTHROPIC_VERTEX_PROJECT_ID .* and CLOUD_ML_REGION/,
    );
    expect(() =>
      modelProviderFromConfig(
        config({
          ANTHROPIC_VERTEX_PROJECT_ID: projectId,
          CLOUD_ML_REGION: region,
          HANDOFF_MODEL: 'anthropic.claude-sonnet-4-5-20250929-v1:0',
        }),
      ),
    ).toThrow(/is an Amazon Bedrock model id/);
  });
});
