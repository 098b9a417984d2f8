/**
 * Messages received by callback (a worker's or a port's 'message' event), read one at a time with
 * `await next()`: in arrival order, each once, waiting when none is queued.
 */
export class Mailbox<T> {
  readonly #queue: T[] = [];
  #waiting: ((message: T) => void) | undefined;

  /** Queues a message, or hands it to the reader waiting for one. */
  readonly deliver = (message: T): void => {
    const resolve = this.#waiting;
    if (resolve) {
      this.#waiting = undefined;
      resolve(message);
    } else {
      this.#queue.push(message);
    }
  };

  next(): Promise<T> {
    const queued = this.#queue.shift();
    return queued === undefined
      ? new Promise((resolve) => (this.#waiting = resolve))
      : Promise.resolve(queued);
  }
}
