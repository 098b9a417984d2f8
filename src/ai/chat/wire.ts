/**
 * Mapping between this layer's chat types and the OpenAI chat-completions wire format, written
 * defensively: OpenAI-compatible servers (Ollama, vLLM, llama.cpp server, LM Studio) omit `id`,
 * `usage` and tool-call `index`, send `content: null`, and leave `finish_reason` null until the end.
 * Answers are read as `unknown` and checked, never trusted to match the SDK's types.
 */
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { ChatError } from './types.js';
import type {
  ChatFinishReason,
  ChatMessage,
  ChatResult,
  ChatTool,
  ChatToolCall,
  ChatUsage,
} from './types.js';

export function toWireMessages(messages: ChatMessage[]): ChatCompletionMessageParam[] {
  return messages.map((message): ChatCompletionMessageParam => {
    switch (message.role) {
      case 'system':
        return { role: 'system', content: message.content };
      case 'user':
        return { role: 'user', content: message.content };
      case 'assistant': {
        const calls = message.tool_calls ?? [];
        if (calls.length === 0) return { role: 'assistant', content: message.content };
        return {
          role: 'assistant',
          content: message.content === '' ? null : message.content,
          tool_calls: calls.map((call) => ({
            id: call.id,
            type: 'function',
            function: { name: call.name, arguments: call.arguments },
          })),
        };
      }
      case 'tool':
        if (message.tool_call_id === undefined) {
          throw new ChatError('rejected', 'a tool message needs the tool_call_id it answers', {
            attempts: 0,
          });
        }
        return { role: 'tool', content: message.content, tool_call_id: message.tool_call_id };
    }
  });
}

export function toWireTools(tools: ChatTool[]): ChatCompletionTool[] {
  return tools.map((tool) => ({
    type: 'function',
    function: {
      name: tool.name,
      parameters: tool.parameters,
      ...(tool.description === undefined ? {} : { description: tool.description }),
    },
  }));
}

export function toFinishReason(value: unknown): ChatFinishReason {
  switch (value) {
    case 'stop':
    case 'length':
    case 'tool_calls':
    case 'content_filter':
      return value;
    case 'function_call':
      return 'tool_calls';
    default:
      return 'other';
  }
}

/** null when absent or malformed (local servers often send none, or zeros). */
export function toUsage(value: unknown): ChatUsage | null {
  if (typeof value !== 'object' || value === null) return null;
  const { prompt_tokens: prompt, completion_tokens: completion } = value as Record<string, unknown>;
  if (typeof prompt !== 'number' || typeof completion !== 'number') return null;
  return { promptTokens: prompt, completionTokens: completion };
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

/** A non-streaming `chat.completion` → ChatResult; anything else is `bad_response`. */
export function toChatResult(body: unknown, fallbackModel: string, attempts: number): ChatResult {
  const bad = (what: string) =>
    new ChatError('bad_response', `chat completion (model ${fallbackModel}) ${what}`, { attempts });
  const choices = record(body)?.choices;
  if (!Array.isArray(choices) || choices.length === 0) throw bad('returned no choices');
  const choice = record(choices[0]);
  const message = record(choice?.message);
  if (!choice || !message) throw bad('returned a choice without a message');
  const content = message.content ?? '';
  if (typeof content !== 'string') throw bad('returned non-text content');
  const toolCalls: ChatToolCall[] = [];
  const rawCalls = message.tool_calls ?? [];
  if (!Array.isArray(rawCalls)) throw bad('returned malformed tool_calls');
  rawCalls.forEach((raw, i) => {
    const fn = record(record(raw)?.function);
    if (!fn || typeof fn.name !== 'string') throw bad('returned a tool call without a function name');
    const id = record(raw)?.id;
    const args = fn.arguments;
    toolCalls.push({
      id: typeof id === 'string' && id !== '' ? id : `call_${i}`,
      name: fn.name,
      // Ollama has been seen sending arguments as an object instead of JSON text.
      arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}),
    });
  });
  const model = record(body)?.model;
  return {
    text: content,
    toolCalls,
    finishReason: toFinishReason(choice.finish_reason ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop')),
    usage: toUsage(record(body)?.usage),
    model: typeof model === 'string' && model !== '' ? model : fallbackModel,
  };
}

interface PartialCall {
  id: string | undefined;
  name: string;
  arguments: string;
}

/**
 * Folds `chat.completion.chunk`s: returns each chunk's text at once, and assembles tool calls whose
 * id/name arrive in one chunk and arguments in fragments over many (keyed by `index`; a server that
 * omits it gets one call per new id).
 */
export class ChunkAccumulator {
  finishReason: ChatFinishReason | undefined;
  usage: ChatUsage | null = null;
  model: string | undefined;
  readonly #calls = new Map<number, PartialCall>();

  /** The text in `chunk` ('' when none). Throws `bad_response` on a chunk that is not an object. */
  add(chunk: unknown, attempts: number): string {
    const body = record(chunk);
    if (!body)
      throw new ChatError('bad_response', 'chat stream sent a chunk that is not an object', { attempts });
    if (typeof body.model === 'string' && body.model !== '') this.model ??= body.model;
    this.usage = toUsage(body.usage) ?? this.usage;
    const choices = Array.isArray(body.choices) ? body.choices : [];
    let text = '';
    for (const raw of choices) {
      const choice = record(raw);
      // Only the first choice is requested (n defaults to 1); ignore any other.
      if (!choice || (typeof choice.index === 'number' && choice.index !== 0)) continue;
      const delta = record(choice.delta);
      if (typeof delta?.content === 'string') text += delta.content;
      if (Array.isArray(delta?.tool_calls)) for (const call of delta.tool_calls) this.#addCall(call);
      if (choice.finish_reason !== null && choice.finish_reason !== undefined) {
        this.finishReason = toFinishReason(choice.finish_reason);
      }
    }
    return text;
  }

  toolCalls(): ChatToolCall[] {
    return [...this.#calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, call]) => ({
        id: call.id ?? `call_${index}`,
        name: call.name,
        arguments: call.arguments,
      }));
  }

  #addCall(raw: unknown): void {
    const call = record(raw);
    if (!call) return;
    const fn = record(call.function);
    const id = typeof call.id === 'string' && call.id !== '' ? call.id : undefined;
    let index: number;
    if (typeof call.index === 'number') index = call.index;
    else if (id !== undefined && ![...this.#calls.values()].some((c) => c.id === id))
      index = this.#calls.size;
    else index = Math.max(0, this.#calls.size - 1);
    const partial = this.#calls.get(index) ?? { id: undefined, name: '', arguments: '' };
    partial.id ??= id;
    // The name arrives whole in the call's first fragment; some servers repeat it later.
    if (typeof fn?.name === 'string' && partial.name === '') partial.name = fn.name;
    if (typeof fn?.arguments === 'string') partial.arguments += fn.arguments;
    else if (typeof fn?.arguments === 'object' && fn.arguments !== null)
      partial.arguments = JSON.stringify(fn.arguments);
    this.#calls.set(index, partial);
  }
}
