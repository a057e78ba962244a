import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkModel } from '../../src/agent/model/check.ts';
import { VertexProvider } from '../../src/agent/model/vertex.ts';
import { loadConfig } from '../../src/config/index.ts';
import { doctor } from '../../src/doctor.ts';
import { type FakeAnthropicServer, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { exampleCredentials, type FakeBedrockServer, startFakeBedrock, withAwsEnv } from '../fakes/bedrock-server.ts';
import { type FakeVertexServer, startFakeVertex } from '../fakes/vertex-server.ts';

const bedrockModel = 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0';

/** Runs `handoff doctor` with these settings; returns its exit code and the Model line (with its fix). */
async function doctorModel(env: Record<string, string>): Promise<{ code: number; line: string; out: string }> {
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.join(' '));
  });
  try {
    const code = await doctor(loadConfig({ env: { HANDOFF_PORT: '0', ...env }, file: '/dev/null' }));
    const out = lines.join('\n');
    return { code, out, line: /^\S+ +Model: .*(\n\s+(fix|check): .*)?/m.exec(out)?.[0] ?? '(no Model line)' };
  } finally {
    spy.mockRestore();
  }
}

describe('handoff doctor asks Amazon Bedrock once and says what is wrong', () => {
  let bedrock: FakeBedrockServer;
  let restoreEnv: () => void;
  const env = (extra: Record<string, string> = {}) => ({
    HANDOFF_MODEL_PROVIDER: 'bedrock',
    HANDOFF_MODEL: bedrockModel,
    AWS_REGION: 'eu-central-1',
    ANTHROPIC_BEDROCK_BASE_URL: bedrock.url,
    ...extra,
  });

  beforeAll(async () => {
    bedrock = await startFakeBedrock({ region: 'eu-central-1', models: [bedrockModel] });
    bedrock.setHandler((body) => {
      // The doctor's request is tiny: one word in, one token out.
      expect(body.max_tokens).toBe(1);
      return { content: [{ type: 'text', text: 'p' }], stop_reason: 'max_tokens' };
    });
    restoreEnv = withAwsEnv({
      AWS_ACCESS_KEY_ID: exampleCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: exampleCredentials.secretAccessKey,
    });
  });
  afterAll(async () => {
    restoreEnv?.();
    await bedrock?.close();
  });

  it('the right settings: ok, with the provider, region, model id and latency', async () => {
    const { line } = await doctorModel(env());
    expect(line).toMatch(
      /^ok {4}Model: Amazon Bedrock in eu-central-1, model eu\.anthropic\.claude-sonnet-4-5-20250929-v1:0 answered in \d+ ms/,
    );
  });

  it('a wrong region: names AWS_REGION and the fix', async () => {
    const { code, line } = await doctorModel(env({ AWS_REGION: 'eu-west-3' }));
    expect(code).toBe(1);
    expect(line).toMatch(
      /^FAIL {2}Model: Amazon Bedrock in eu-west-3, .*does not serve the region .*AWS_REGION=eu-west-3/,
    );
    expect(line).toMatch(/fix: set AWS_REGION to the region of the Bedrock endpoint/);
  });

  it('a wrong model id: names the model id and where to look', async () => {
    const { code, line } = await doctorModel(env({ HANDOFF_MODEL: 'anthropic.claude-sonnet-9-v1:0' }));
    expect(code).toBe(1);
    expect(line).toMatch(
      /^FAIL {2}Model: .*model anthropic\.claude-sonnet-9-v1:0: the model id is wrong or not offered in eu-central-1 \(.*The provided model identifier is invalid/,
    );
    expect(line).toMatch(/fix: set HANDOFF_MODEL to a Bedrock model id or inference profile offered in eu-central-1/);
  });

  it('bad credentials: names the credentials, never prints the secret', async () => {
    const secret = 'je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY';
    const restore = withAwsEnv({ AWS_ACCESS_KEY_ID: 'AKIAI44QH8DHBEXAMPLE', AWS_SECRET_ACCESS_KEY: secret });
    try {
      const { code, line, out } = await doctorModel(env());
      expect(code).toBe(1);
      expect(line).toMatch(/^FAIL {2}Model: .*the AWS credentials were refused .*UnrecognizedClientException/);
      expect(line).toMatch(/fix: the AWS credentials Handoff runs with/);
      expect(out).not.toContain(secret);
    } finally {
      restore();
    }
  });

  it('settings that cannot work fail without a request: Bedrock without a region', async () => {
    const before = bedrock.requests.length;
    const { code, line } = await doctorModel({ HANDOFF_MODEL_PROVIDER: 'bedrock', HANDOFF_MODEL: bedrockModel });
    expect(code).toBe(1);
    expect(line).toMatch(/^FAIL {2}Model: HANDOFF_MODEL_PROVIDER=bedrock needs AWS_REGION/);
    expect(bedrock.requests.length).toBe(before);
  });
});

describe('handoff doctor asks the Anthropic API once', () => {
  let anthropic: FakeAnthropicServer;
  const key = 'sk-ant-doctor-secret-0123456789';
  beforeAll(async () => {
    anthropic = await startFakeAnthropic({ apiKey: key });
  });
  afterAll(async () => {
    await anthropic?.close();
  });

  it('ok with a good key; names a refused key and an unknown model id, never printing the key', async () => {
    anthropic.enqueue({ content: [{ type: 'text', text: 'p' }], stop_reason: 'max_tokens' });
    const good = await doctorModel({ ANTHROPIC_API_KEY: key, ANTHROPIC_BASE_URL: anthropic.url });
    expect(good.line).toMatch(/^ok {4}Model: the Anthropic API, model claude-sonnet-5-5 answered in \d+ ms/);
    expect(anthropic.requests.at(-1)?.body).toMatchObject({ max_tokens: 1 });

    const wrongKey = 'sk-ant-wrong-key-9876543210';
    const bad = await doctorModel({ ANTHROPIC_API_KEY: wrongKey, ANTHROPIC_BASE_URL: anthropic.url });
    expect(bad.line).toMatch(/^FAIL {2}Model: .*the API key was refused .*401[\s\S]*fix: set ANTHROPIC_API_KEY/);
    expect(bad.out).not.toContain(wrongKey);

    anthropic.enqueue({ status: 404, error: { type: 'not_found_error', message: 'model: claude-nope' } });
    const noModel = await doctorModel({
      ANTHROPIC_API_KEY: key,
      ANTHROPIC_BASE_URL: anthropic.url,
      HANDOFF_MODEL: 'claude-nope',
    });
    expect(noModel.line).toMatch(
      /^FAIL {2}Model: .*model claude-nope: the model id was not found[\s\S]*fix: set HANDOFF_MODEL/,
    );
    expect(noModel.out).not.toContain(key);
  });

  it('the demo model is a plain ok line with no request', async () => {
    const before = anthropic.requests.length;
    const { line } = await doctorModel({});
    expect(line).toMatch(/^ok {4}Model: demo model/);
    expect(line).not.toMatch(/fix:|check:/);
    expect(anthropic.requests.length).toBe(before);
  });
});

describe('the model check on Vertex AI', () => {
  let vertex: FakeVertexServer;
  const token = 'ya29.doctor-token';
  const auth = (t: string) => {
    const client = new OAuth2Client();
    client.setCredentials({ access_token: t, expiry_date: Date.now() + 3_600_000 });
    return client;
  };
  const provider = (region: string, t = token) =>
    new VertexProvider({
      model: 'claude-sonnet-4-5@20250929',
      projectId: 'p-doctor',
      region,
      baseURL: vertex.url,
      authClient: auth(t),
      maxRetries: 0,
    });
  beforeAll(async () => {
    vertex = await startFakeVertex({
      projectId: 'p-doctor',
      accessToken: token,
      locations: { 'europe-west1': ['claude-sonnet-4-5@20250929'], 'asia-south1': [] },
    });
    vertex.setHandler(() => ({ content: [{ type: 'text', text: 'p' }], stop_reason: 'max_tokens' }));
  });
  afterAll(async () => {
    await vertex?.close();
  });

  it('ok in a location with the model; names the location without it, and refused credentials', async () => {
    expect(await checkModel(provider('europe-west1'))).toMatchObject({
      ok: true,
      detail: expect.stringMatching(
        /^Vertex AI in europe-west1 \(project p-doctor\), model claude-sonnet-4-5@20250929 answered in \d+ ms/,
      ),
    });
    expect(await checkModel(provider('asia-south1'))).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/the model was not found in asia-south1 \(.*404 NOT_FOUND: Publisher Model/),
      fix: expect.stringMatching(/CLOUD_ML_REGION to a region that offers it/),
    });
    expect(await checkModel(provider('europe-west1', 'ya29.stale'))).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/the Google credentials were refused/),
      fix: expect.stringMatching(/gcloud auth application-default login/),
    });
  });

  it('without Google credentials: named by the check, and the process does not die of the SDK’s early lookup', async () => {
    const saved = process.env.GOOGLE_APPLICATION_CREDENTIALS;
    // A missing file: Application Default Credentials fail at once, with no network lookup.
    process.env.GOOGLE_APPLICATION_CREDENTIALS = '/nonexistent/handoff-test-adc.json';
    try {
      const p = new VertexProvider({
        model: 'claude-sonnet-4-5@20250929',
        projectId: 'p-doctor',
        region: 'europe-west1',
        baseURL: vertex.url,
        maxRetries: 0,
      });
      // Let the SDK's credential lookup settle before anyone asks: an unhandled rejection would fail this test.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await checkModel(p)).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/no Google credentials were found \(Failed to acquire Google OAuth credentials/),
        fix: expect.stringMatching(/GOOGLE_APPLICATION_CREDENTIALS/),
      });
      expect(vertex.requests.every((r) => r.headers.authorization !== undefined)).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
      else process.env.GOOGLE_APPLICATION_CREDENTIALS = saved;
    }
  });
});
