/**
 * A local HTTP server speaking the OpenAI chat-completions wire protocol (`POST /v1/chat/completions`),
 * for end-to-end tests of chat providers: plain JSON answers (`chat.completion`) and SSE streams
 * (`data: {chat.completion.chunk}\n\n` … `data: [DONE]\n\n`: a role chunk, one chunk per word,
 * tool-call deltas with the arguments split into small fragments, a finish chunk, then a
 * `choices: []` usage chunk when the client asked for `stream_options.include_usage`).
 *
 * Behaviour is scripted per request: `enqueue(...)` queues one script per coming request (retries
 * included); when the queue is empty, `fallback` answers. Every request is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedToolCall {
  /** Omitted: the server sends none (like some local servers); the client must invent one. */
  id?: string;
  name: string;
  /** JSON text, streamed in `fragmentSize`-character pieces. */
  arguments: string;
}

export type ChatScript =
  | {
      kind: 'answer';
      text: string;
      toolCalls?: ScriptedToolCall[];
      /** Default true; false: no usage at all (Ollama/llama.cpp style). */
      usage?: boolean;
      /** Default 'stop' ('tool_calls' when there are tool calls). */
      finishReason?: string;
      /** Default false; true: chunks and completion without `id` / `created`. */
      omitId?: boolean;
      /** Wait before the response headers. */
      delayMs?: number;
      /** Wait between stream chunks. */
      chunkDelayMs?: number;
      /** Size of tool-call argument fragments when streaming (default 3). */
      fragmentSize?: number;
    }
  | { kind: 'error'; status: number; headers?: Record<string, string>; message?: string }
  /** Streaming: sends the role chunk and `afterTokens` word chunks of `text`, then destroys the socket. Not streaming: destroys at once. */
  | { kind: 'drop'; text: string; afterTokens: number }
  /** Accepts the request and never answers (until the client gives up or the server closes). */
  | { kind: 'hang' };

export interface RecordedRequest {
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  /** `Date.now()` at arrival. */
  at: number;
}

export interface ChatServer {
  baseUrl: string;
  requests: RecordedRequest[];
  enqueue(...scripts: ChatScript[]): void;
  /** Answers requests when the queue is empty. */
  fallback: ChatScript;
  close(): Promise<void>;
}

const MODEL_ECHO_DEFAULT = 'fake-model';

/** 'Hello there world' → ['Hello', ' there', ' world']: one word per chunk, spaces kept. */
export function words(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

export async function startChatServer(): Promise<ChatServer> {
  const queue: ChatScript[] = [];
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });
  let sequence = 0;
  const state = { fallback: { kind: 'answer', text: 'Hello from the fake model.' } as ChatScript };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        sendError(res, 404, 'not found');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      requests.push({ body, headers: req.headers, at: Date.now() });
      const script = queue.shift() ?? state.fallback;
      sequence += 1;
      respond(script, body, res, `chatcmpl-${sequence}`, wait).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    enqueue(...scripts) {
      queue.push(...scripts);
    },
    get fallback() {
      return state.fallback;
    },
    set fallback(script) {
      state.fallback = script;
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } }));
}

async function respond(
  script: ChatScript,
  body: Record<string, unknown>,
  res: ServerResponse,
  id: string,
  wait: (ms: number) => Promise<void>,
): Promise<void> {
  const model = typeof body.model === 'string' ? body.model : MODEL_ECHO_DEFAULT;
  const streaming = body.stream === true;
  switch (script.kind) {
    case 'hang':
      return;
    case 'error':
      sendError(res, script.status, script.message ?? `scripted ${script.status}`, script.headers);
      return;
    case 'drop': {
      if (!streaming) {
        res.socket?.destroy();
        return;
      }
      startSse(res);
      const chunk = chunkFactory(id, model, false);
      writeEvent(res, chunk({ role: 'assistant', content: '' }, null));
      for (const word of words(script.text).slice(0, script.afterTokens)) {
        writeEvent(res, chunk({ content: word }, null));
      }
      // Let the written chunks reach the client before the connection dies.
      await wait(20);
      res.socket?.destroy();
      return;
    }
    case 'answer':
      break;
  }
  if (script.delayMs !== undefined) await wait(script.delayMs);
  if (gone(res)) return;
  const calls = script.toolCalls ?? [];
  const finishReason = script.finishReason ?? (calls.length > 0 ? 'tool_calls' : 'stop');
  const promptTokens = JSON.stringify(body.messages).length;
  const completionTokens = words(script.text).length + calls.length;
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
  const includeUsage = script.usage !== false;

  if (!streaming) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ...(script.omitId ? {} : { id, created: Math.floor(Date.now() / 1000) }),
        object: 'chat.completion',
        model,
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: calls.length > 0 && script.text === '' ? null : script.text,
              refusal: null,
              ...(calls.length > 0
                ? {
                    tool_calls: calls.map((call, i) => ({
                      id: call.id ?? `call_srv_${i}`,
                      type: 'function',
                      function: { name: call.name, arguments: call.arguments },
                    })),
                  }
                : {}),
            },
            logprobs: null,
            finish_reason: finishReason,
          },
        ],
        ...(includeUsage ? { usage } : {}),
      }),
    );
    return;
  }

  const options = body.stream_options as { include_usage?: boolean } | undefined;
  const wantsUsage = includeUsage && options?.include_usage === true;
  const chunk = chunkFactory(id, model, script.omitId === true, wantsUsage);
  const pace = async () => {
    if (script.chunkDelayMs !== undefined) await wait(script.chunkDelayMs);
  };
  startSse(res);
  writeEvent(res, chunk({ role: 'assistant', content: '' }, null));
  for (const word of words(script.text)) {
    await pace();
    if (gone(res)) return;
    writeEvent(res, chunk({ content: word }, null));
  }
  const size = script.fragmentSize ?? 3;
  for (const [index, call] of calls.entries()) {
    await pace();
    writeEvent(
      res,
      chunk(
        {
          tool_calls: [
            {
              index,
              ...(call.id === undefined ? {} : { id: call.id }),
              type: 'function',
              function: { name: call.name, arguments: '' },
            },
          ],
        },
        null,
      ),
    );
    for (let i = 0; i < call.arguments.length; i += size) {
      writeEvent(
        res,
        chunk({ tool_calls: [{ index, function: { arguments: call.arguments.slice(i, i + size) } }] }, null),
      );
    }
  }
  await pace();
  if (gone(res)) return;
  writeEvent(res, chunk({}, finishReason));
  if (wantsUsage) {
    writeEvent(res, { ...chunk({}, null), choices: [], usage });
  }
  res.write('data: [DONE]\n\n');
  res.end();
}

/** A function, not `res.destroyed` inline: the compiler cannot know an await may have changed it. */
function gone(res: ServerResponse): boolean {
  return res.destroyed;
}

function startSse(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
}

function writeEvent(res: ServerResponse, data: unknown): void {
  res.write(`data: ${JSON.stringify(data)}\n\n`);
}

/** Chunks in the real `chat.completion.chunk` shape (OpenAI sends `usage: null` on every chunk but the last when usage was asked for). */
function chunkFactory(id: string, model: string, omitId: boolean, usageField = false) {
  const created = Math.floor(Date.now() / 1000);
  return (delta: Record<string, unknown>, finishReason: string | null) => ({
    ...(omitId ? {} : { id, created }),
    object: 'chat.completion.chunk',
    model,
    system_fingerprint: null,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(usageField ? { usage: null } : {}),
  });
}
