// Progress of a long operation (count, rate, ETA) redrawn in place on a terminal. Logs, pipes,
// the daemon's syslog and --quiet get nothing: a \r-redrawn line is noise anywhere but a TTY.

/** What the layers report: how many done so far, and the total once they know it. */
export type ProgressCallback = (done: number, total?: number) => void;

/** Bound functions, so they can be handed on as callbacks. */
export interface Progress {
  readonly update: (done: number, total?: number) => void;
  /** Draws the final count and ends the line (once); nothing if no work was ever reported. */
  readonly finish: () => void;
}

export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  quiet?: boolean;
  stream?: ProgressStream;
  /** Milliseconds; injectable so tests control throttling and rates. */
  now?: () => number;
  /** Least time between redraws, and before the first (a quick run shows only its final line). */
  intervalMs?: number;
}

const silent: Progress = { update() {}, finish() {} };

/** The line a progress reporter last drew and has not ended, and the stream it is on. */
let liveLine: { stream: ProgressStream; text: string } | undefined;

/**
 * Writes whole lines (a log message) to `stream` without mixing them into a progress line drawn
 * there: that line is cleared first and drawn again below them.
 */
export function writeAboveProgress(stream: ProgressStream, lines: string): void {
  if (liveLine?.stream !== stream) {
    stream.write(lines);
    return;
  }
  stream.write(`\r\x1b[K${lines}${liveLine.text}`);
}

/** A rate over less time than this swings wildly (the first requests all finish together). */
const MIN_RATE_SECS = 1;

export function formatDuration(secs: number): string {
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
}

function formatRate(perSec: number): string {
  return `${perSec >= 10 ? Math.round(perSec) : perSec.toFixed(1)}/s`;
}

export function createProgress(label: string, total: number | undefined, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet || stream.isTTY !== true) return silent;
  const now = opts.now ?? Date.now;
  const interval = opts.intervalMs ?? 250;
  const started = now();
  let lastDraw = started;
  let done = 0;
  let reported = false;
  let finished = false;

  const count = (): string => (total === undefined ? `${done}` : `${done}/${total}`);
  const draw = (text: string, end = ''): void => {
    // \x1b[K clears what a longer previous line left behind.
    const line = `\r${label}: ${text}\x1b[K`;
    stream.write(line + end);
    liveLine = end === '' ? { stream, text: line } : liveLine?.stream === stream ? undefined : liveLine;
  };

  return {
    update(n, newTotal) {
      // Stragglers after a failure must not redraw below the final line.
      if (finished) return;
      done = n;
      if (newTotal !== undefined) total = newTotal;
      reported = true;
      const t = now();
      if (t - lastDraw < interval) return;
      lastDraw = t;
      const secs = (t - started) / 1000;
      const parts = [count() + (total ? ` (${Math.floor((100 * done) / total)}%)` : '')];
      if (secs >= MIN_RATE_SECS && done > 0) {
        const rate = done / secs;
        parts.push(formatRate(rate));
        if (total !== undefined) parts.push(`ETA ${formatDuration((total - done) / rate)}`);
      }
      draw(parts.join(', '));
    },
    finish() {
      if (!reported || finished) return;
      finished = true;
      const secs = (now() - started) / 1000;
      draw(`${count()} in ${secs.toFixed(1)} s${secs >= MIN_RATE_SECS ? `, ${formatRate(done / secs)}` : ''}`, '\n');
    },
  };
}
