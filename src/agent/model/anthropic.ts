import Anthropic from '@anthropic-ai/sdk';
import { ErrorCodes, HandoffError, type Usage } from '../../core/index.ts';
import type {
  MessageParam,
  ModelProvider,
  ModelRequest,
  ModelResponse,
  TextBlockParam,
  ToolDefinition,
} from './provider.ts';

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

/** The API rejects a request with more than this many `cache_control` blocks. */
const maxCacheBreakpoints = 4;
const ephemeral = { type: 'ephemeral' } as const;

type ContentBlockParam = Anthropic.Messages.ContentBlockParam;

/** Talks to the Anthropic Messages API through the official SDK, non-streaming. */
export class AnthropicProvider implements ModelProvider {
  readonly name = 'anthropic';
  readonly demo = false;
  readonly model: string;
  readonly #client: Anthropic;
  // Kept private and only used to scrub messages: an error text must never carry the key.
  readonly #apiKey: string;

  constructor(options: AnthropicProviderOptions) {
    this.model = options.model;
    this.#apiKey = options.apiKey;
    this.#client = new Anthropic({
      apiKey: options.apiKey,
      maxRetries: options.maxRetries ?? 3,
      ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
      ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    });
  }

  async createMessage(request: ModelRequest, signal?: AbortSignal): Promise<ModelResponse> {
    if (signal?.aborted) throw cancelledError(signal);
    const { system, tools: custom, messages } = withCacheBreakpoints(request);
    const tools: Anthropic.Messages.ToolUnion[] = [...custom, ...(request.serverTools ?? [])];
    let message: Anthropic.Messages.Message;
    try {
      message = await this.#client.messages.create(
        {
          model: this.model,
          max_tokens: request.maxTokens,
          messages,
          ...(system.length > 0 ? { system } : {}),
          ...(tools.length > 0 ? { tools } : {}),
          ...(request.toolChoice === undefined ? {} : { tool_choice: request.toolChoice }),
        },
        signal === undefined ? {} : { signal },
      );
    } catch (err) {
      throw this.#toHandoffError(err, signal);
    }
    if (!Array.isArray(message.content)) {
      throw new HandoffError(ErrorCodes.modelFailed, 'The model API returned a response without content.', {
        retryable: true,
      });
    }
    return {
      content: message.content,
      stopReason: message.stop_reason ?? null,
      usage: toUsage(message.usage),
      model: message.model,
    };
  }

  #toHandoffError(err: unknown, signal: AbortSignal | undefined): HandoffError {
    // Checked first: an abort can surface as APIUserAbortError, a DOMException, or a
    // connection error depending on where the request was when the signal fired.
    if (signal?.aborted) return cancelledError(signal, err);
    if (err instanceof HandoffError) return err;

    let message: string;
    let retryable: boolean;
    if (err instanceof Anthropic.APIUserAbortError) {
      return new HandoffError(ErrorCodes.cancelled, 'The model request was cancelled.', { cause: err });
    } else if (err instanceof Anthropic.APIConnectionTimeoutError) {
      message = 'The model API did not answer in time.';
      retryable = true;
    } else if (err instanceof Anthropic.APIConnectionError) {
      message = 'Could not reach the model API.';
      retryable = true;
    } else if (err instanceof Anthropic.APIError) {
      const status = typeof err.status === 'number' ? err.status : undefined;
      const type = typeof err.type === 'string' ? err.type : undefined;
      retryable = isRetryableStatus(status) || type === 'overloaded_error' || type === 'rate_limit_error';
      const detail = typeof err.apiMessage === 'string' && err.apiMessage !== '' ? `: ${err.apiMessage}` : '';
      const requestId = typeof err.requestID === 'string' ? ` (request-id ${err.requestID})` : '';
      message = `The model API returned ${status ?? 'an error'}${type ? ` ${type}` : ''}${detail}${requestId}`;
    } else {
      message = `The model request failed: ${err instanceof Error ? err.message : String(err)}`;
      retryable = false;
    }
    const scrubbed = this.#scrub(message);
    // Drop the SDK error as cause if its text carries the key, so a logger that prints causes cannot leak it.
    const causeText = err instanceof Error ? `${err.message}\n${String(err.stack)}` : String(err);
    const cause = this.#apiKey !== '' && causeText.includes(this.#apiKey) ? undefined : err;
    return new HandoffError(ErrorCodes.modelFailed, scrubbed, { retryable, ...(cause === undefined ? {} : { cause }) });
  }

  #scrub(text: string): string {
    return this.#apiKey === '' ? text : text.split(this.#apiKey).join('[redacted]');
  }
}

function isRetryableStatus(status: number | undefined): boolean {
  if (status === undefined) return false;
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

function cancelledError(signal: AbortSignal, cause?: unknown): HandoffError {
  // A timeout or Cancel button upstream usually aborts with its own HandoffError; keep its code.
  if (signal.reason instanceof HandoffError) return signal.reason;
  return new HandoffError(ErrorCodes.cancelled, 'The model request was cancelled.', {
    cause: cause ?? signal.reason,
  });
}

function toUsage(u: Anthropic.Messages.Usage | undefined): Usage {
  return {
    inputTokens: u?.input_tokens ?? 0,
    outputTokens: u?.output_tokens ?? 0,
    cacheReadTokens: u?.cache_read_input_tokens ?? 0,
    cacheWriteTokens: u?.cache_creation_input_tokens ?? 0,
  };
}

/**
 * Returns copies of system, tools and messages with prompt-cache breakpoints placed;
 * the caller's arrays and blocks are never mutated.
 *
 * Breakpoints, in prefix order: the last tool (tools are byte-stable), the last system
 * block, the last user message before the newest one (where the previous turn wrote the
 * cache, so this turn reads it whatever the lookback window), and the newest user message
 * (written now for the next turn). Breakpoints the caller put on messages are dropped:
 * they would pile up as the transcript grows and push the request past the limit of 4.
 */
export function withCacheBreakpoints(request: Pick<ModelRequest, 'system' | 'tools' | 'messages'>): {
  system: TextBlockParam[];
  tools: ToolDefinition[];
  messages: MessageParam[];
} {
  const tools = request.tools.map((tool, i) =>
    i === request.tools.length - 1 ? { ...tool, cache_control: ephemeral } : tool,
  );
  const system = request.system.map((block, i) =>
    i === request.system.length - 1 ? { ...block, cache_control: ephemeral } : block,
  );
  let budget =
    maxCacheBreakpoints -
    tools.filter((t) => t.cache_control != null).length -
    system.filter((b) => b.cache_control != null).length;

  const messages = request.messages.map(withoutCacheControl);
  const userIndexes: number[] = [];
  messages.forEach((m, i) => {
    if (m.role === 'user') userIndexes.push(i);
  });
  // Newest first, so the write for the next turn wins when the budget is short.
  for (const index of userIndexes.slice(-2).reverse()) {
    if (budget <= 0) break;
    const marked = markLastBlock(messages[index]!);
    if (marked !== undefined) {
      messages[index] = marked;
      budget--;
    }
  }
  return { system, tools, messages };
}

function withoutCacheControl(message: MessageParam): MessageParam {
  if (typeof message.content === 'string') return message;
  if (!message.content.some((b) => 'cache_control' in b)) return message;
  // Same code in both branches: narrowing by role keeps system content typed as text blocks.
  if (message.role === 'system') {
    return { ...message, content: message.content.map((b) => stripCacheControl(b)) };
  }
  return { ...message, content: message.content.map((b) => stripCacheControl(b)) };
}

function stripCacheControl<T extends ContentBlockParam>(block: T): T {
  if (!('cache_control' in block)) return block;
  const { cache_control: _dropped, ...rest } = block;
  return rest as T;
}

function markLastBlock(message: MessageParam): MessageParam | undefined {
  if (message.role !== 'user') return undefined;
  if (typeof message.content === 'string') {
    if (message.content === '') return undefined;
    return { ...message, content: [{ type: 'text', text: message.content, cache_control: ephemeral }] };
  }
  const last = message.content.at(-1);
  // Thinking blocks cannot carry cache_control; they never end a user message in practice.
  if (last === undefined || last.type === 'thinking' || last.type === 'redacted_thinking') return undefined;
  const content = [...message.content];
  content[content.length - 1] = { ...last, cache_control: ephemeral };
  return { ...message, content };
}
