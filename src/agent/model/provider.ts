import type Anthropic from '@anthropic-ai/sdk';
import type { Usage } from '../../core/index.ts';

export type MessageParam = Anthropic.Messages.MessageParam;
export type ContentBlock = Anthropic.Messages.ContentBlock;
export type ToolDefinition = Anthropic.Messages.Tool;
export type TextBlockParam = Anthropic.Messages.TextBlockParam;
/** A tool the API runs itself: web search, restricted to the envelope's domains. */
export type ServerTool = Anthropic.Messages.WebSearchTool20250305;

export interface ModelRequest {
  /** Byte-stable across turns; the last block carries a prompt-cache breakpoint. */
  system: TextBlockParam[];
  messages: MessageParam[];
  tools: ToolDefinition[];
  /** Tools the API runs itself (web search), after `tools`; byte-stable for a run like them. */
  serverTools?: ServerTool[];
  maxTokens: number;
  /** Force a particular tool (the planner forces submit_plan on its last try). */
  toolChoice?: { type: 'auto' } | { type: 'any' } | { type: 'tool'; name: string };
}

export interface ModelResponse {
  content: ContentBlock[];
  stopReason: string | null;
  usage: Usage;
  model: string;
}

/** A source of model turns: the Anthropic API, or the demo provider. */
export interface ModelProvider {
  readonly name: string;
  /** The model id shown on cards. */
  readonly model: string;
  /** True for the scripted demo model; every card says so. */
  readonly demo: boolean;
  /**
   * False when the platform cannot run the web search server tool (Amazon Bedrock): plans made
   * with this provider never offer or include it. Absent means it can.
   */
  readonly offersWebSearch?: boolean;
  createMessage(request: ModelRequest, signal?: AbortSignal): Promise<ModelResponse>;
}
