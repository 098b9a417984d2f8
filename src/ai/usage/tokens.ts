/**
 * Token counts for usage accounting, with gpt-tokenizer's `o200k_base` (the GPT-4o / GPT-5 family
 * encoding; other models' tokenizers differ by a few percent). Used when the server does not report
 * usage (many local servers do not) and to measure a question for routing.
 *
 * A chat prompt costs its messages' tokens plus the chat format's framing: 3 tokens per message and 3
 * to prime the reply, as OpenAI documents for its current chat models.
 */
import type { ChatMessage } from '../chat/types.js';
import { countTokens } from '../chunking/tokens.js';

export { countTokens };

const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

export function countChatTokens(messages: readonly ChatMessage[]): number {
  let total = REPLY_PRIMING;
  for (const message of messages) {
    total += PER_MESSAGE + countTokens(message.content);
    for (const call of message.tool_calls ?? [])
      total += countTokens(call.name) + countTokens(call.arguments);
  }
  return total;
}
