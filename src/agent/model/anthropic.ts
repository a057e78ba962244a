import Anthropic from '@anthropic-ai/sdk';
import { MessagesProvider } from './messages-provider.ts';

export interface AnthropicProviderOptions {
  /** Anthropic API key. Sent only to `baseURL`; never logged or put in error messages. */
  apiKey: string;
  /** API origin without `/v1`. Default: the SDK's (`ANTHROPIC_BASE_URL`, then https://api.anthropic.com). */
  baseURL?: string;
  /** Model id, e.g. `claude-sonnet-4-5`. */
  model: string;
  /** How many times the SDK retries 408/409/429/5xx and connection errors, with backoff. Default 3. */
  maxRetries?: number;
  /** Per-attempt request timeout in milliseconds. Default: the SDK's (10 minutes for non-streaming calls). */
  timeoutMs?: number;
}

/** Talks to the Anthropic Messages API through the official SDK, non-streaming. */
export class AnthropicProvider extends MessagesProvider {
  constructor(options: AnthropicProviderOptions) {
    super({
      name: 'anthropic',
      model: options.model,
      label: 'the Anthropic API',
      secrets: [options.apiKey],
      client: new Anthropic({
        apiKey: options.apiKey,
        maxRetries: options.maxRetries ?? 3,
        ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
        ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
      }),
    });
  }
}

export { withCacheBreakpoints } from './messages-provider.ts';
