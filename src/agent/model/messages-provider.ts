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

/**
 * What a provider needs from an SDK client: the Messages API's `create`. `Anthropic`,
 * `AnthropicBedrock` and `AnthropicVertex` all have it; only how they are built differs.
 */
export interface MessagesClient {
  messages: Pick<Anthropic['messages'], 'create'>;
}

export interface MessagesProviderOptions {
  /** `anthropic`, `bedrock` or `vertex`: shown by `handoff doctor` and in logs. */
  name: string;
  /** Model id as the platform names it (sent in the body, or in the URL on Bedrock and Vertex). */
  model: string;
  client: MessagesClient;
  /** Where requests go, for people: "the Anthropic API", "Amazon Bedrock in eu-central-1". */
  label: string;
  /** The cloud region requests go to (Bedrock, Vertex); undefined for the Anthropic API. */
  region?: string;
  /** Values that MUST NOT appear in an error message (API keys); replaced by `[redacted]`. */
  secrets?: readonly string[];
  /**
   * Why requests with server tools (web search) cannot be served by this platform; such a
   * request is refused before it is sent. Undefined: server tools are passed through.
   */
  serverToolsRefusal?: string;
}

/** The API rejects a request with more than this many `cache_control` blocks. */
const maxCacheBreakpoints = 4;
const ephemeral = { type: 'ephemeral' } as const;

type ContentBlockParam = Anthropic.Messages.ContentBlockParam;

/**
 * The Messages API through an official SDK client, non-streaming: prompt-cache
 * breakpoints, usage (with cache reads and writes), the SDK's retries and the abort
 * signal are the same whichever platform serves it.
 */
export class MessagesProvider implements ModelProvider {
  readonly name: string;
  readonly demo = false;
  readonly model: string;
  readonly label: string;
  readonly region: string | undefined;
  readonly #client: MessagesClient;
  // Kept private and only used to scrub messages: an error text must never carry a key.
  readonly #secrets: readonly string[];
  readonly #serverToolsRefusal: string | undefined;
  readonly offersWebSearch: boolean;

  constructor(options: MessagesProviderOptions) {
    this.name = options.name;
    this.model = options.model;
    this.label = options.label;
    this.region = options.region;
    this.#client = options.client;
    this.#secrets = (options.secrets ?? []).filter((s) => s !== '');
    this.#serverToolsRefusal = options.serverToolsRefusal;
    // The planner leaves web search out where it would be refused (a plan approved elsewhere
    // still meets the refusal in createMessage).
    this.offersWebSearch = options.serverToolsRefusal === undefined;
  }

  async createMessage(request: ModelRequest, signal?: AbortSignal): Promise<ModelResponse> {
    if (signal?.aborted) throw cancelledError(signal);
    if (this.#serverToolsRefusal !== undefined && (request.serverTools?.length ?? 0) > 0) {
      // Terminal: the platform cannot run the tool, so retrying would fail the same way.
      throw new HandoffError(ErrorCodes.modelFailed, this.#serverToolsRefusal, { retryable: false });
    }
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
      throw new HandoffError(
        ErrorCodes.modelFailed,
        `${capitalised(this.label)} returned a response without content.`,
        {
          retryable: true,
        },
      );
    }
    return {
      content: message.content,
      stopReason: message.stop_reason ?? null,
      usage: toUsage(message.usage),
      model: message.model ?? this.model,
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
      message = `${capitalised(this.label)} did not answer in time.`;
      retryable = true;
    } else if (err instanceof Anthropic.APIConnectionError) {
      // Bedrock and Vertex report credentials that could not be resolved as connection errors.
      const why = err.cause instanceof Error && err.cause.message !== '' ? ` (${err.cause.message})` : '';
      message =
        err.message.startsWith('Failed to') && err.message !== 'Connection error.'
          ? `${err.message}${why}`
          : `Could not reach ${this.label}${why}.`;
      retryable = true;
    } else if (err instanceof Anthropic.APIError) {
      const status = typeof err.status === 'number' ? err.status : undefined;
      const info = apiErrorInfo(err);
      retryable = isRetryableStatus(status) || info.type === 'overloaded_error' || info.type === 'rate_limit_error';
      const detail = info.message !== undefined ? `: ${info.message}` : '';
      const requestId = info.requestId !== undefined ? ` (request-id ${info.requestId})` : '';
      message = `${capitalised(this.label)} returned ${status ?? 'an error'}${info.type ? ` ${info.type}` : ''}${detail}${requestId}`;
    } else {
      message = `The model request failed: ${err instanceof Error ? err.message : String(err)}`;
      retryable = false;
    }
    const scrubbed = this.#scrub(message);
    // Drop the SDK error as cause if its text carries a key, so a logger that prints causes cannot leak it.
    const causeText = err instanceof Error ? `${err.message}\n${String(err.stack)}` : String(err);
    const cause = this.#secrets.some((s) => causeText.includes(s)) ? undefined : err;
    return new HandoffError(ErrorCodes.modelFailed, scrubbed, { retryable, ...(cause === undefined ? {} : { cause }) });
  }

  #scrub(text: string): string {
    return this.#secrets.reduce((t, s) => t.split(s).join('[redacted]'), text);
  }
}

/** What an error answer said, whichever platform's shape it came in. */
export interface ApiErrorInfo {
  status: number | undefined;
  /**
   * Anthropic's `error.type` (`not_found_error`), Bedrock's `x-amzn-ErrorType`
   * (`ValidationException`) or Google's `error.status` (`NOT_FOUND`).
   */
  type: string | undefined;
  message: string | undefined;
  requestId: string | undefined;
}

/**
 * Reads an SDK APIError: the Anthropic API answers `{error: {type, message}}`, Bedrock
 * `{message}` with the type in the `x-amzn-ErrorType` header, Google `{error: {code,
 * message, status}}`.
 */
export function apiErrorInfo(err: InstanceType<typeof Anthropic.APIError>): ApiErrorInfo {
  const body = (typeof err.error === 'object' && err.error !== null ? err.error : {}) as Record<string, unknown>;
  const inner = (typeof body.error === 'object' && body.error !== null ? body.error : {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const amznType = err.headers?.get('x-amzn-errortype')?.split(':')[0];
  return {
    status: typeof err.status === 'number' ? err.status : undefined,
    type: text(err.type) ?? text(amznType) ?? text(inner.status) ?? text(body.__type),
    message: text(err.apiMessage) ?? text(body.message) ?? text(body.Message),
    requestId:
      text(err.requestID) ?? text(err.headers?.get('x-amzn-requestid')) ?? text(err.headers?.get('x-request-id')),
  };
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
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
