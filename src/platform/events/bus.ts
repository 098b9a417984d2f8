/**
 * The internal event bus: domain events (a document's status changed, ingestion progress) published
 * by whichever process did the work and delivered to every process that listens (SSE/WebSocket
 * streams of later features). In embedded mode everything runs in one process and an in-process
 * emitter is enough; with `REDIS_URL`, events fan out over Redis pub/sub so an API replica sees what a
 * worker did. Delivery is best effort (pub/sub has no replay): the database stays the truth, events
 * only tell listeners to look.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export type DocumentStatus = 'queued' | 'parsing' | 'searchable' | 'ready' | 'failed';

export type LarderEvent =
  | {
      type: 'document.status_changed';
      workspaceId: string;
      collectionId: string;
      documentId: string;
      status: DocumentStatus;
      /** Set when status is `failed`. */
      error?: string;
    }
  | {
      type: 'document.progress';
      workspaceId: string;
      collectionId: string;
      documentId: string;
      stage: 'parsing' | 'embedding';
      /** 0–100. */
      percent: number;
    };

export type EventHandler = (event: LarderEvent) => void;

export interface EventBus {
  /** Never throws: a lost event must not fail the work that produced it. */
  publish(event: LarderEvent): Promise<void>;
  /** Returns the unsubscribe function. */
  subscribe(handler: EventHandler): () => void;
  close(): Promise<void>;
}

/** Delivers to the handlers of this process; a throwing handler is logged and does not stop the others. */
class LocalFanout {
  readonly #emitter = new EventEmitter({ captureRejections: false });
  constructor(private readonly logger: Logger) {
    this.#emitter.setMaxListeners(0);
  }
  deliver(event: LarderEvent): void {
    for (const handler of this.#emitter.listeners('event') as EventHandler[]) {
      try {
        handler(event);
      } catch (error) {
        this.logger.warn({ err: error, event: event.type }, 'event handler failed');
      }
    }
  }
  subscribe(handler: EventHandler): () => void {
    this.#emitter.on('event', handler);
    return () => this.#emitter.off('event', handler);
  }
}

export class InProcessEventBus implements EventBus {
  readonly #fanout: LocalFanout;
  constructor(logger: Logger) {
    this.#fanout = new LocalFanout(logger);
  }
  publish(event: LarderEvent): Promise<void> {
    // Asynchronous like the Redis bus, so publishers never run subscriber code on their own stack.
    queueMicrotask(() => {
      this.#fanout.deliver(event);
    });
    return Promise.resolve();
  }
  subscribe(handler: EventHandler): () => void {
    return this.#fanout.subscribe(handler);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export const EVENTS_CHANNEL = 'larder:events';

/**
 * Redis pub/sub. Publishing uses the shared connection; subscribing needs a connection of its own
 * (a subscribed Redis connection cannot run other commands), opened on the first `subscribe`.
 */
export class RedisEventBus implements EventBus {
  readonly #fanout: LocalFanout;
  #subscriber: Redis | undefined;
  #subscribing: Promise<unknown> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    private readonly channel = EVENTS_CHANNEL,
  ) {
    this.#fanout = new LocalFanout(logger);
  }

  async publish(event: LarderEvent): Promise<void> {
    try {
      await this.redis.publish(this.channel, JSON.stringify(event));
    } catch (error) {
      this.logger.warn({ err: error, event: event.type }, 'event not published');
    }
  }

  subscribe(handler: EventHandler): () => void {
    if (!this.#subscriber) {
      const subscriber = this.redis.duplicate({ connectionName: 'larder-events' });
      subscriber.on('error', (error) => {
        this.logger.warn({ err: error }, 'redis event subscriber error');
      });
      subscriber.on('message', (channel: string, message: string) => {
        if (channel !== this.channel) return;
        const event = parseEvent(message);
        if (event) this.#fanout.deliver(event);
        else this.logger.warn({ channel }, 'ignored a malformed event');
      });
      this.#subscribing = subscriber.subscribe(this.channel).catch((error: unknown) => {
        this.logger.warn({ err: error }, 'event subscription failed');
      });
      this.#subscriber = subscriber;
    }
    return this.#fanout.subscribe(handler);
  }

  /** Resolves once the subscription is active (tests, and callers that must not miss the next event). */
  async ready(): Promise<void> {
    await this.#subscribing;
  }

  async close(): Promise<void> {
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber)
      await subscriber.quit().catch(() => {
        subscriber.disconnect();
      });
  }
}

function parseEvent(message: string): LarderEvent | undefined {
  try {
    const value = JSON.parse(message) as Partial<LarderEvent> | null;
    if (value && typeof value.type === 'string' && typeof value.workspaceId === 'string')
      return value as LarderEvent;
  } catch {
    // fall through
  }
  return undefined;
}
