import { AnthropicBedrock } from '@anthropic-ai/bedrock-sdk';
import { MessagesProvider } from './messages-provider.ts';

export interface BedrockProviderOptions {
  /**
   * Bedrock model id (`anthropic.claude-sonnet-4-5-20250929-v1:0`), inference profile id
   * (`global.anthropic.claude-…`, `eu.anthropic.claude-…`) or ARN.
   */
  model: string;
  /** AWS region requests are signed for and sent to (`bedrock-runtime.<region>.amazonaws.com`). */
  region: string;
  /** Bedrock Runtime endpoint (a VPC endpoint, a gateway, a test fake). Default: the region's public one. */
  baseURL?: string;
  /** How many times the SDK retries 408/409/429/5xx and connection errors, with backoff. Default 3. */
  maxRetries?: number;
  /** Per-attempt request timeout in milliseconds. Default: the SDK's (10 minutes). */
  timeoutMs?: number;
  /**
   * Fixed AWS credentials. Default: the standard AWS chain (environment, shared config and
   * SSO, web identity, ECS/EC2 roles) resolved per request, so rotated credentials are used.
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Why a model id cannot be a Bedrock one; undefined when it can. */
export function bedrockModelProblem(model: string): string | undefined {
  if (model.startsWith('arn:')) return undefined;
  // Base ids are `anthropic.<name>`; inference profiles prefix a geography (`us.`, `eu.`, `global.`).
  if (/^([a-z]{2,6}\.)?anthropic\.[a-z0-9][a-z0-9.:-]*$/.test(model)) return undefined;
  return `HANDOFF_MODEL=${model} is not an Amazon Bedrock model id: Bedrock names Claude models like anthropic.claude-sonnet-4-5-20250929-v1:0, or by an inference profile such as global.anthropic.claude-sonnet-4-5-20250929-v1:0 (or an ARN)`;
}

/**
 * Claude on Amazon Bedrock (`POST /model/{modelId}/invoke`, SigV4-signed) through
 * `@anthropic-ai/bedrock-sdk`. Web search is not offered on Bedrock, so a request with it
 * is refused before it is sent.
 */
export class BedrockProvider extends MessagesProvider {
  constructor(options: BedrockProviderOptions) {
    const c = options.credentials;
    super({
      name: 'bedrock',
      model: options.model,
      region: options.region,
      label: `Amazon Bedrock in ${options.region}`,
      // Never in an error text: the secret key and session token (given, or the chain's from the
      // environment) and a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK, sent as a bearer token).
      secrets: [
        c?.secretAccessKey ?? '',
        c?.sessionToken ?? '',
        process.env.AWS_SECRET_ACCESS_KEY ?? '',
        process.env.AWS_SESSION_TOKEN ?? '',
        process.env.AWS_BEARER_TOKEN_BEDROCK ?? '',
      ],
      serverToolsRefusal:
        'Web search is not available on Amazon Bedrock, and this plan allows it. Approve a plan without web search, or run Handoff with HANDOFF_MODEL_PROVIDER=anthropic or vertex.',
      client: bedrockClient(options),
    });
  }
}

function bedrockClient(options: BedrockProviderOptions): AnthropicBedrock {
  const common = {
    awsRegion: options.region,
    maxRetries: options.maxRetries ?? 3,
    ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
    ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
  };
  const c = options.credentials;
  if (c === undefined) return new AnthropicBedrock(common);
  return new AnthropicBedrock({
    ...common,
    awsAccessKey: c.accessKeyId,
    awsSecretKey: c.secretAccessKey,
    awsSessionToken: c.sessionToken ?? null,
  });
}
