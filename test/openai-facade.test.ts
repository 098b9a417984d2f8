/**
 * The OpenAI-compatible facade (POST /v1/chat/completions, GET /v1/models) driven by the official
 * `openai` client against a listening server, on both drivers: extractive answers over ingested
 * documents (every citation re-read from its source), streaming in OpenAI's chunk format, model names
 * selecting collections, history condensing, errors the client raises; and one run with a model behind
 * a local OpenAI-compatible server.
 */
import type { AddressInfo } from 'node:net';
import OpenAI, { APIError } from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Citation, HANDBOOK, verifyCitations } from './helpers/answers.js';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { type ChatServer, startChatServer } from './helpers/chat-server.js';
import { drivers } from './helpers/database.js';
import { authHeaders, type DocumentBody, waitForStatus } from './helpers/documents.js';

interface Larder {
  answerId: string;
  conversationId: string;
  standaloneQuestion: string;
  grounded: boolean;
  provider: string;
  fallback: { reason: string; message: string } | null;
  reviewed: boolean;
  sources: { n: number; chunkId: string; collectionId: string }[];
  answer?: string;
}
interface Extensions {
  citations: Citation[];
  larder: Larder;
}
type Completion = OpenAI.ChatCompletion & Extensions;

const PARENTAL = 'How many weeks of parental leave do employees get?';

async function setUp(t: TestApp, owner: SignedUp, collections: Record<string, typeof HANDBOOK>) {
  const ids: Record<string, string> = {};
  for (const [name, docs] of Object.entries(collections)) {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/collections',
      headers: authHeaders(owner),
      payload: { name },
    });
    expect(created.statusCode, created.body).toBe(201);
    ids[name] = created.json<{ id: string }>().id;
    for (const doc of docs) {
      const res = await t.app.inject({
        method: 'POST',
        url: `/v1/collections/${ids[name]}/documents`,
        headers: authHeaders(owner),
        payload: doc,
      });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json<{ document: DocumentBody }>().document;
      await waitForStatus(t.app, owner, body.id, ['searchable', 'ready', 'failed']);
    }
  }
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  return { ids, baseURL: `http://127.0.0.1:${port}/v1` };
}

async function createKey(t: TestApp, owner: SignedUp, payload: object): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/api-keys',
    headers: authHeaders(owner),
    payload,
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ key: string }>().key;
}

/** Reads a stream of chunks: the text deltas joined, the role, the final chunk and the usage chunk. */
async function collect(stream: AsyncIterable<ChatCompletionChunk>) {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  const final = chunks.find((c) => c.choices[0]?.finish_reason === 'stop');
  const usage = chunks.find((c) => c.choices.length === 0 && c.usage);
  return { chunks, text, final: final as (ChatCompletionChunk & Extensions) | undefined, usage };
}

describe.each(drivers())('OpenAI-compatible facade (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  let ids: Record<string, string>;
  let client: OpenAI;
  let baseURL: string;

  beforeAll(async () => {
    t = await createTestApp(driver, {
      jobs: 'work',
      configure: (c) => ({ ...fastAuth(c), answerMinBm25: 0.5 }),
    });
    owner = await signUp(t.app, `facade-${driver}@example.com`, 'Ada Owner');
    ({ ids, baseURL } = await setUp(t, owner, {
      Handbook: HANDBOOK,
      Recipes: [
        {
          title: 'Bread',
          text: '# Bread\n\nSourdough bread rises with a wild yeast starter fed on flour and water.',
        },
      ],
    }));
    const apiKey = await createKey(t, owner, { name: 'chat ui', scopes: ['answers'] });
    client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers with [n] markers and citations that quote the documents exactly', async () => {
    const res = await client.chat.completions.create({
      model: 'larder',
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: PARENTAL },
      ],
      temperature: 0.2,
      max_completion_tokens: 300,
      prompt_cache_key: 'someone',
    });
    const ext = res as Completion;
    expect(res).toMatchObject({ object: 'chat.completion', model: 'larder' });
    expect(res.id).toBe(`chatcmpl-${ext.larder.answerId}`);
    expect(res.created).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]).toMatchObject({ index: 0, finish_reason: 'stop', message: { role: 'assistant' } });
    const content = res.choices[0]!.message.content ?? '';
    expect(content).toMatch(/16 weeks/);
    expect(content).toMatch(/\[1\]/);
    expect(res.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    expect(ext.citations.length).toBeGreaterThan(0);
    expect(ext.citations[0]!.quote).toMatch(/16 weeks/);
    for (const c of ext.citations) expect(content).toContain(`[${c.n}]`);
    await verifyCitations(t, owner, ext.citations);
    expect(ext.larder).toMatchObject({
      grounded: true,
      provider: 'extractive',
      fallback: null,
      reviewed: false,
      standaloneQuestion: PARENTAL,
    });
    expect(ext.larder.sources.length).toBeGreaterThan(0);

    // stored like any answer: the message, in a conversation of its own, owned by the key
    const message = await t.db.database.db
      .selectFrom('messages')
      .innerJoin('conversations', 'conversations.id', 'messages.conversation_id')
      .select(['messages.status', 'messages.content', 'conversations.id as conversationId'])
      .where('messages.id', '=', ext.larder.answerId)
      .executeTakeFirstOrThrow();
    expect(message).toEqual({ status: 'complete', content, conversationId: ext.larder.conversationId });
  });

  it('accepts text content parts and refuses other parts, n > 1 and a missing question (400)', async () => {
    const parts = await client.chat.completions.create({
      model: 'larder',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'How many weeks of parental leave' },
            { type: 'text', text: 'do employees get?' },
          ],
        },
      ],
    });
    expect(parts.choices[0]!.message.content).toMatch(/16 weeks/);

    const refused = [
      {
        model: 'larder',
        messages: [
          {
            role: 'user' as const,
            content: [{ type: 'image_url' as const, image_url: { url: 'https://example.com/a.png' } }],
          },
        ],
      },
      { model: 'larder', n: 2, messages: [{ role: 'user' as const, content: PARENTAL }] },
      { model: 'larder', messages: [{ role: 'system' as const, content: 'Be brief.' }] },
    ];
    for (const body of refused) {
      const error = await client.chat.completions.create(body).catch((e: unknown) => e);
      expect(error, JSON.stringify(body)).toBeInstanceOf(APIError);
      expect((error as APIError).status).toBe(400);
      expect((error as APIError).error).toMatchObject({ code: 'validation_failed' });
      expect((error as APIError).message).toMatch(/^400 \S/);
    }
  });

  it('streams OpenAI chunks: role, content deltas, a final chunk with citations, usage, [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model: 'larder',
      messages: [{ role: 'user', content: 'How are parental leave requests submitted?' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const { chunks, text, final, usage } = await collect(stream);
    expect(chunks[0]!.choices[0]!.delta).toMatchObject({ role: 'assistant' });
    expect(new Set(chunks.map((c) => JSON.stringify([c.object, c.model])))).toEqual(
      new Set([JSON.stringify(['chat.completion.chunk', 'larder'])]),
    );
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(final).toBeDefined();
    expect(chunks[0]!.id).toBe(`chatcmpl-${final!.larder.answerId}`);
    expect(text).toBe(final!.larder.answer);
    expect(text).toMatch(/HR portal/);
    expect(text).toMatch(/\[1\]/);
    expect(final!.citations.length).toBeGreaterThan(0);
    await verifyCitations(t, owner, final!.citations);
    expect(usage?.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    // the usage chunk is the last one
    expect(chunks.at(-1)).toBe(usage);

    // the raw wire format ends with [DONE]; no usage chunk unless asked for
    const raw = await fetch(`${baseURL}/chat/completions`, {
      method: 'POST',
      headers: { ...authHeaders(owner), 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'larder',
        stream: true,
        messages: [{ role: 'user', content: PARENTAL }],
      }),
    });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const body = await raw.text();
    expect(body.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(body).not.toMatch(/^event:/m);
    expect(body).not.toContain('"usage"');
  });

  it('selects collections by model name, lists the names, and 404s on unknown models', async () => {
    const byName = await client.chat.completions.create({
      model: 'larder:Handbook',
      messages: [{ role: 'user', content: PARENTAL }],
    });
    const ext = byName as Completion;
    expect(ext.larder.grounded).toBe(true);
    expect(ext.larder.sources.every((s) => s.collectionId === ids.Handbook)).toBe(true);
    expect(byName.model).toBe('larder:Handbook');

    const elsewhere = (await client.chat.completions.create({
      model: `larder:${ids.Recipes}@fast`,
      messages: [{ role: 'user', content: PARENTAL }],
    })) as Completion;
    expect(elsewhere.larder.grounded).toBe(false);
    expect(elsewhere.citations).toEqual([]);
    expect(elsewhere.larder.sources.every((s) => s.collectionId === ids.Recipes)).toBe(true);

    const bread = (await client.chat.completions.create({
      model: 'larder:Recipes',
      messages: [{ role: 'user', content: 'What does sourdough bread rise with?' }],
    })) as Completion;
    expect(bread.citations[0]).toMatchObject({ documentTitle: 'Bread', collectionId: ids.Recipes });

    const models = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models.map((m) => m.id)).toEqual(['larder', 'larder:Handbook', 'larder:Recipes']);
    expect(models.map((m) => [m.object, m.owned_by])).toEqual(models.map(() => ['model', 'larder']));

    for (const model of ['gpt-4o', 'larder:Cellar', 'larder:handbook', 'larder@turbo']) {
      const error = await client.chat.completions
        .create({ model, messages: [{ role: 'user', content: PARENTAL }] })
        .catch((e: unknown) => e);
      expect(error, model).toBeInstanceOf(APIError);
      expect((error as APIError).status).toBe(404);
      expect((error as APIError).error).toMatchObject({ code: 'not_found' });
      expect((error as APIError).message).toContain('larder:Handbook');
      expect((error as APIError).message).toContain('GET /v1/models');
    }
    // streaming requests fail the same way, before any chunk
    const streamed = await client.chat.completions
      .create({ model: 'nope', stream: true, messages: [{ role: 'user', content: PARENTAL }] })
      .catch((e: unknown) => e);
    expect((streamed as APIError).status).toBe(404);
  });

  it('sees only what the caller sees: a key limited to one collection, a member token', async () => {
    const apiKey = await createKey(t, owner, {
      name: 'recipes only',
      scopes: ['answers'],
      collections: [ids.Recipes],
    });
    const limited = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
    const models = await limited.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['larder', 'larder:Recipes']);
    const error = await limited.chat.completions
      .create({ model: 'larder:Handbook', messages: [{ role: 'user', content: PARENTAL }] })
      .catch((e: unknown) => e);
    expect((error as APIError).status).toBe(404);
    const all = (await limited.chat.completions.create({
      model: 'larder',
      messages: [{ role: 'user', content: PARENTAL }],
    })) as Completion;
    expect(all.larder.sources.every((s) => s.collectionId === ids.Recipes)).toBe(true);

    // a member's access token, with the workspace in a header
    const member = new OpenAI({
      baseURL,
      apiKey: owner.token,
      defaultHeaders: { 'x-workspace-id': owner.workspaceId },
      maxRetries: 0,
    });
    expect((await member.models.list()).data).toHaveLength(3);
    // a key without the answers scope is refused
    const searchKey = await createKey(t, owner, { name: 'search', scopes: ['search'] });
    const denied = await new OpenAI({ baseURL, apiKey: searchKey, maxRetries: 0 }).models
      .list()
      .catch((e: unknown) => e);
    expect((denied as APIError).status).toBe(403);
    const anonymous = await new OpenAI({ baseURL, apiKey: 'lk_live_nope', maxRetries: 0 }).models
      .list()
      .catch((e: unknown) => e);
    expect((anonymous as APIError).status).toBe(401);
  });

  it('uses earlier messages as history: a follow-up is condensed with the previous question', async () => {
    const res = await client.chat.completions.create({
      model: 'larder:Handbook',
      messages: [
        { role: 'system', content: 'Answer from the handbook.' },
        { role: 'user', content: PARENTAL },
        {
          role: 'assistant',
          content: 'Employees are entitled to 16 weeks of parental leave at full pay [1].',
        },
        { role: 'user', content: 'Who approves it?' },
      ],
    });
    const ext = res as Completion;
    expect(ext.larder.standaloneQuestion).toBe(`Who approves it? (${PARENTAL})`);
    expect(res.choices[0]!.message.content).toMatch(/Managers approve parental leave requests/);
    await verifyCitations(t, owner, ext.citations);
    // the stored conversation holds this turn only (the history came with the request)
    const stored = await t.db.database.db
      .selectFrom('messages')
      .select(['role', 'content'])
      .where('conversation_id', '=', ext.larder.conversationId)
      .orderBy('created_at')
      .execute();
    expect(stored.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(stored[0]!.content).toBe('Who approves it?');

    // without history the same question stands alone
    const alone = (await client.chat.completions.create({
      model: 'larder:Handbook',
      messages: [{ role: 'user', content: 'Who approves it?' }],
    })) as Completion;
    expect(alone.larder.standaloneQuestion).toBe('Who approves it?');
  });
});

describe.each(drivers())('OpenAI-compatible facade with a model (%s)', (driver) => {
  let t: TestApp;
  let chat: ChatServer;
  let owner: SignedUp;
  let client: OpenAI;

  beforeAll(async () => {
    chat = await startChatServer();
    t = await createTestApp(driver, {
      jobs: 'work',
      configure: (c) => ({
        ...fastAuth(c),
        chatProvider: 'openai',
        chatBaseUrl: chat.baseUrl,
        chatModel: 'gpt-4o-mini',
        chatMaxAttempts: 1,
        chatTimeoutMs: 5_000,
        answerMinBm25: 0.5,
      }),
    });
    owner = await signUp(t.app, `facade-model-${driver}@example.com`);
    const { baseURL } = await setUp(t, owner, { Handbook: HANDBOOK });
    const apiKey = await createKey(t, owner, { name: 'chat ui', scopes: ['answers'] });
    client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
  });
  afterAll(async () => {
    await t.close();
    await chat.close();
  });

  it('streams the model’s answer token by token, with resolved citations and real usage', async () => {
    const text = 'Employees get 16 weeks of parental leave at full pay [1].';
    chat.enqueue({ kind: 'answer', text });
    const stream = await client.chat.completions.create({
      model: 'larder@strong',
      messages: [{ role: 'user', content: 'How long is parental leave?' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const got = await collect(stream);
    expect(got.text).toBe(text);
    expect(got.chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThan(5);
    expect(got.final!.larder).toMatchObject({ provider: 'openai', grounded: true, fallback: null });
    expect(got.final!.citations.map((c) => c.n)).toEqual([1]);
    await verifyCitations(t, owner, got.final!.citations);
    expect(got.usage!.usage!.prompt_tokens).toBeGreaterThan(50);
    expect(got.usage!.usage!.completion_tokens).toBeGreaterThan(5);
    expect(got.usage!.usage!.total_tokens).toBe(
      got.usage!.usage!.prompt_tokens + got.usage!.usage!.completion_tokens,
    );
    // the Larder prompt went to the model, not the caller's
    const body = chat.requests.at(-1)!.body as { messages: { content: string }[] };
    expect(body.messages.at(-1)!.content).toMatch(/<source n="1" title="Parental leave policy"/);
  });

  it('answers extractively, saying so, when the model fails', async () => {
    chat.enqueue({ kind: 'error', status: 500, message: 'boom' });
    const res = (await client.chat.completions.create({
      model: 'larder',
      messages: [{ role: 'user', content: 'Who approves parental leave requests?' }],
    })) as Completion;
    expect(res.larder.fallback).toMatchObject({ reason: expect.any(String) as string });
    expect(res.choices[0]!.message.content).toMatch(/Managers approve/);
    await verifyCitations(t, owner, res.citations);
  });
});
