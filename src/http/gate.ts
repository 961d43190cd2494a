/**
 * A counting gate (semaphore): at most `max` holders at once, the rest wait in arrival order.
 *
 * The ingest route passes large bodies through one, so that fifty clients uploading 100,000-row
 * batches at once are parsed a few at a time instead of all together: the same throughput with a
 * fraction of the memory and garbage-collection work (the waiting bodies stay in socket buffers).
 *
 * @module
 */

/**
 * @example
 * ```ts
 * const gate = new Gate(4); // at most 4 holders; the fifth waits
 * await gate.enter();
 * try {
 *   await new Promise((resolve) => setTimeout(resolve, 10)); // the work
 * } finally {
 *   gate.leave();
 * }
 * ```
 */
export class Gate {
  private holders = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  /** Resolves when the caller holds a place. */
  enter(): Promise<void> {
    if (this.holders < this.max) {
      this.holders++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives the place to the next waiter, or frees it. */
  leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.holders--;
  }
}
