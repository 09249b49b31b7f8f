// Time as the layers read it: the wall clock when mounted, a hand-driven one in tests, so that a
// test of "uploaded once the write delay is up" moves time on instead of sleeping and reading
// Date.now() on a machine whose speed it does not know.

export interface Clock {
  /** Milliseconds, as Date.now(). */
  now(): number;
  /** Calls `fn` once, `ms` from now; the result cancels it. */
  after(ms: number, fn: () => void): () => void;
  /** Calls `fn` every `ms` until cancelled; it never keeps the process alive by itself. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};
