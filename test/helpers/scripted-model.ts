import type { ContentBlock, ModelProvider, ModelRequest, ModelResponse } from '../../src/agent/model/provider.ts';
import type { Usage } from '../../src/core/index.ts';

export const text = (t: string): ContentBlock => ({ type: 'text', text: t, citations: null });

export const toolUse = (id: string, name: string, input: unknown): ContentBlock => ({
  type: 'tool_use',
  id,
  name,
  input,
  caller: { type: 'direct' },
});

/** What every scripted turn reports using. */
export const turnUsage: Usage = { inputTokens: 1000, outputTokens: 200, cacheReadTokens: 0, cacheWriteTokens: 0 };

/** A scripted turn: its content, or the content with the stop reason (and usage) the API would give. */
export type ScriptedTurn = ContentBlock[] | { content: ContentBlock[]; stopReason: string; usage?: Usage };

/**
 * An in-memory ModelProvider that plays back scripted turns and keeps a copy of every
 * request it was sent (snapshots: callers keep appending to the same arrays).
 */
export class ScriptedModel implements ModelProvider {
  readonly name = 'scripted';
  readonly model = 'scripted-model';
  readonly demo = false;
  readonly requests: ModelRequest[] = [];
  private readonly turns: ScriptedTurn[];

  constructor(turns: ScriptedTurn[]) {
    this.turns = [...turns];
  }

  async createMessage(request: ModelRequest): Promise<ModelResponse> {
    this.requests.push(structuredClone(request));
    const turn = this.turns.shift();
    if (!turn) throw new Error('the scripted model ran out of turns');
    const content = Array.isArray(turn) ? turn : turn.content;
    return {
      content,
      stopReason: Array.isArray(turn)
        ? content.some((b) => b.type === 'tool_use')
          ? 'tool_use'
          : 'end_turn'
        : turn.stopReason,
      usage: (!Array.isArray(turn) && turn.usage) || turnUsage,
      model: this.model,
    };
  }
}
