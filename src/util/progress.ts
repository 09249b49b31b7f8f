// Progress of a long operation (count, rate, ETA) on a terminal; silent in logs and pipes.

export interface Progress {
  update(done: number): void;
  /** Shows the final count (on a terminal) and ends the line. */
  finish(done: number): void;
}

export function createProgress(label: string, total: number | undefined, opts: { quiet: boolean; stream?: NodeJS.WriteStream }): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet || !stream.isTTY) return { update() {}, finish() {} };
  const started = Date.now();
  let last = 0;
  const render = (done: number): void => {
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = total !== undefined && rate > 0 ? `, ETA ${Math.ceil((total - done) / rate)} s` : '';
    const of = total !== undefined ? `/${total}` : '';
    stream.write(`\r${label} ${done}${of} (${rate.toFixed(0)}/s${eta})\x1b[K`);
  };
  return {
    update(done) {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      render(done);
    },
    finish(done) {
      render(done);
      stream.write('\n');
    },
  };
}
