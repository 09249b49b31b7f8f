// A clock that moves only when a test says so (src/util/clock.ts's Clock): timers fall due in
// order as advance() passes them, each followed by the I/O and promises it sets off, so "not
// before the delay, then at once" is asserted without reading the wall clock.

/** @typedef {import('../../dist/util/clock.js').Clock} Clock */

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** @implements {Clock} */
export class ManualClock {
  #now = 1_000_000;
  /** @type {Array<{ at: number, fn: () => void, every?: number }>} */
  #timers = [];

  now() {
    return this.#now;
  }

  /** @param {number} ms @param {() => void} fn */
  after(ms, fn) {
    const timer = { at: this.#now + ms, fn };
    this.#timers.push(timer);
    return () => this.#cancel(timer);
  }

  /** @param {number} ms @param {() => void} fn */
  every(ms, fn) {
    const timer = { at: this.#now + ms, fn, every: ms };
    this.#timers.push(timer);
    return () => this.#cancel(timer);
  }

  /** Moves time on by `ms`, running every timer that falls due on the way, in order. */
  async advance(ms) {
    const end = this.#now + ms;
    await this.settle();
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.#now = due.at;
      if (due.every === undefined) this.#cancel(due);
      else due.at += due.every;
      due.fn();
      await this.settle();
    }
    this.#now = end;
  }

  /** Lets what is under way run: a few turns of the event loop (in-memory stores answer at once). */
  async settle(turns = 20) {
    for (let i = 0; i < turns; i++) await turn();
  }

  #cancel(timer) {
    const i = this.#timers.indexOf(timer);
    if (i >= 0) this.#timers.splice(i, 1);
  }
}
