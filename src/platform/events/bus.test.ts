/** The event bus: in-process delivery, and fan-out between processes over real Redis pub/sub. */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../../test/helpers/config.js';
import { InProcessEventBus, type LarderEvent, RedisEventBus } from './bus.js';

const event = (status: 'queued' | 'ready', documentId = 'd1'): LarderEvent => ({
  type: 'document.status_changed',
  workspaceId: 'w1',
  collectionId: 'c1',
  documentId,
  status,
});

const until = async (check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('InProcessEventBus', () => {
  it('delivers to every subscriber asynchronously; a throwing handler does not stop the others', async () => {
    const bus = new InProcessEventBus(silentLogger);
    const seen: string[] = [];
    bus.subscribe(() => {
      throw new Error('bad handler');
    });
    const off = bus.subscribe((e) => seen.push(`a:${e.type}`));
    bus.subscribe((e) => seen.push(`b:${e.type}`));
    const published = bus.publish(event('queued'));
    expect(seen).toEqual([]); // not on the publisher's stack
    await published;
    await until(() => seen.length === 2);
    off();
    await bus.publish(event('ready'));
    await until(() => seen.length === 3);
    expect(seen).toEqual([
      'a:document.status_changed',
      'b:document.status_changed',
      'b:document.status_changed',
    ]);
  });
});

const redisUrl = inject('redisUrl');

describe.runIf(redisUrl !== null)('RedisEventBus', () => {
  const channel = `larder:events:test:${randomBytes(4).toString('hex')}`;
  const connections: Redis[] = [];
  const connect = () => {
    const redis = new Redis(redisUrl ?? '');
    connections.push(redis);
    return redis;
  };
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.quit()));
  });

  it('fans events out from one process to the subscribers of another, in order; ignores junk', async () => {
    const worker = new RedisEventBus(connect(), silentLogger, channel);
    const api = new RedisEventBus(connect(), silentLogger, channel);
    const received: LarderEvent[] = [];
    api.subscribe((e) => received.push(e));
    await api.ready();
    await connections[0]?.publish(channel, 'not json');
    for (let i = 0; i < 20; i++) await worker.publish(event(i % 2 ? 'ready' : 'queued', `d${i}`));
    await until(() => received.length === 20);
    expect(received.map((e) => (e.type === 'document.status_changed' ? e.documentId : ''))).toEqual(
      Array.from({ length: 20 }, (_, i) => `d${i}`),
    );
    await worker.close();
    await api.close();
  });

  it('publishing never throws when Redis is gone', async () => {
    const redis = new Redis(redisUrl ?? '', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    redis.on('error', () => undefined);
    const bus = new RedisEventBus(redis, silentLogger, channel);
    await expect(bus.publish(event('queued'))).resolves.toBeUndefined();
    redis.disconnect();
  });
});
