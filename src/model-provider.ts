import {
  AnthropicProvider,
  BedrockProvider,
  bedrockModelProblem,
  checkModel,
  DemoProvider,
  type ModelCheck,
  type ModelProvider,
  VertexProvider,
  vertexModelProblem,
} from './agent/index.ts';
import type { Config } from './config/index.ts';
import { ErrorCodes, HandoffError } from './core/index.ts';
import { Metrics } from './observability/index.ts';

export interface ModelProviderOverrides {
  /** SDK retries (the doctor asks once, without retrying). */
  maxRetries?: number;
  /** Per-attempt request timeout in milliseconds. */
  timeoutMs?: number;
}

/**
 * The model provider the settings name: the Anthropic API, Amazon Bedrock, Google Vertex
 * AI, or the demo model when none is configured. A setting that cannot work (Bedrock
 * without a region, a Bedrock id on Vertex) throws a config error naming it, so Handoff
 * fails at start rather than on the first task.
 */
export function modelProviderFromConfig(config: Config, overrides: ModelProviderOverrides = {}): ModelProvider {
  const common = {
    model: config.model,
    ...(overrides.maxRetries === undefined ? {} : { maxRetries: overrides.maxRetries }),
    ...(overrides.timeoutMs === undefined ? {} : { timeoutMs: overrides.timeoutMs }),
  };
  const fail = (message: string) => new HandoffError(ErrorCodes.config, message);
  switch (config.modelProvider ?? (config.anthropicApiKey ? 'anthropic' : undefined)) {
    case undefined:
      return new DemoProvider();
    case 'anthropic':
      if (!config.anthropicApiKey) throw fail('HANDOFF_MODEL_PROVIDER=anthropic needs ANTHROPIC_API_KEY');
      return new AnthropicProvider({
        ...common,
        apiKey: config.anthropicApiKey,
        ...(config.anthropicBaseUrl ? { baseURL: config.anthropicBaseUrl } : {}),
      });
    case 'bedrock': {
      // AWS_REGION is shared with the S3 store, whose S3-compatible services accept names like `auto`.
      const region = config.bedrockRegion ?? config.s3Region;
      if (!region) {
        throw fail(
          'HANDOFF_MODEL_PROVIDER=bedrock needs AWS_REGION (or HANDOFF_BEDROCK_REGION), the region Bedrock is called in (e.g. eu-central-1)',
        );
      }
      if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
        throw fail(
          `AWS_REGION=${region} is not an AWS region Bedrock can be called in; set HANDOFF_BEDROCK_REGION (e.g. eu-central-1)`,
        );
      }
      const problem = bedrockModelProblem(config.model);
      if (problem) throw fail(problem);
      return new BedrockProvider({
        ...common,
        region,
        ...(config.bedrockBaseUrl ? { baseURL: config.bedrockBaseUrl } : {}),
      });
    }
    case 'vertex': {
      const missing = [
        config.vertexProjectId ? undefined : 'ANTHROPIC_VERTEX_PROJECT_ID (the Google Cloud project)',
        config.vertexRegion ? undefined : 'CLOUD_ML_REGION (the Vertex AI location, e.g. europe-west1 or global)',
      ].filter((m) => m !== undefined);
      if (missing.length > 0 || !config.vertexProjectId || !config.vertexRegion) {
        throw fail(`HANDOFF_MODEL_PROVIDER=vertex needs ${missing.join(' and ')}`);
      }
      const problem = vertexModelProblem(config.model);
      if (problem) throw fail(problem);
      return new VertexProvider({
        ...common,
        projectId: config.vertexProjectId,
        region: config.vertexRegion,
        ...(config.vertexBaseUrl ? { baseURL: config.vertexBaseUrl } : {}),
      });
    }
  }
}

/**
 * `handoff doctor`'s model line: one tiny real request to the configured provider, without
 * retries, or the settings problem that stops Handoff from starting.
 */
export async function modelCheckFromConfig(config: Config): Promise<ModelCheck> {
  let provider: ModelProvider;
  try {
    provider = modelProviderFromConfig(config, { maxRetries: 0, timeoutMs: 20_000 });
  } catch (err) {
    return {
      name: 'Model',
      ok: false,
      detail: (err as Error).message,
      fix: 'the model settings (docs/models.md)',
    };
  }
  return checkModel(provider, { timeoutMs: 30_000 });
}

/**
 * The provider with each request timed into `handoff_model_request_seconds`: the time a plan
 * or a run waits for the model, which the run's own figures leave out.
 */
export function timedProvider(provider: ModelProvider, metrics: Metrics): ModelProvider {
  return {
    name: provider.name,
    model: provider.model,
    demo: provider.demo,
    ...(provider.offersWebSearch === undefined ? {} : { offersWebSearch: provider.offersWebSearch }),
    createMessage: async (request, signal) => {
      const started = performance.now();
      try {
        const response = await provider.createMessage(request, signal);
        metrics.modelRequest.observe({ outcome: 'ok' }, Metrics.since(started));
        return response;
      } catch (err) {
        metrics.modelRequest.observe({ outcome: 'error' }, Metrics.since(started));
        throw err;
      }
    },
  };
}
