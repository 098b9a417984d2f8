/** The chat-completion provider layer: SPI and errors, the OpenAI-compatible provider, the circuit breaker. */
export { ChatError, isAvailabilityFailure } from './types.js';
export type {
  ChatDelta,
  ChatErrorReason,
  ChatFinishReason,
  ChatMessage,
  ChatProvider,
  ChatRequest,
  ChatResult,
  ChatRole,
  ChatTool,
  ChatToolCall,
  ChatUsage,
} from './types.js';
export { OpenAIChatProvider, type OpenAIChatOptions } from './openai.js';
export { CircuitBreakerChatProvider, type CircuitBreakerOptions, type CircuitState } from './breaker.js';
