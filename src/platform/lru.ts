/**
 * A Map bounded to `capacity` entries that evicts the least recently used one. A Map iterates in
 * insertion order, so re-inserting on every read keeps the least recently used key first.
 */
export class LruMap<K, V> {
  readonly #map = new Map<K, V>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.#map.size;
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  /** Stores the value as the most recently used, evicting the least recently used beyond capacity. */
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.capacity) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
  }
}
