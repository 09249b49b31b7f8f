// One lock per key (block number): holders of the same key run one after another, in order.

export class KeyedMutex {
  private readonly tails = new Map<number, Promise<void>>();

  run<T>(key: number, task: () => Promise<T>): Promise<T> {
    return this.runAll([key], task);
  }

  /**
   * Runs `task` holding every key's lock at once (distinct keys). The holder joins all the
   * queues in one synchronous step, so two holders of overlapping sets always meet in the same
   * order on every key they share: no deadlock, whatever the sets.
   */
  async runAll<T>(keys: readonly number[], task: () => Promise<T>): Promise<T> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const waits: Promise<void>[] = [];
    const tails = keys.map((key) => {
      const previous = this.tails.get(key);
      if (previous) waits.push(previous);
      const tail = (previous ?? Promise.resolve()).then(() => mine);
      this.tails.set(key, tail);
      return tail;
    });
    await Promise.all(waits);
    try {
      return await task();
    } finally {
      release();
      // Forget a key once nobody queued behind us, so the map stays small.
      keys.forEach((key, i) => {
        if (this.tails.get(key) === tails[i]) this.tails.delete(key);
      });
    }
  }

  get size(): number {
    return this.tails.size;
  }
}
