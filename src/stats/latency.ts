// Latency histograms with fixed buckets (Prometheus style). Observing costs a short scan of the
// bounds and three additions: no allocation, so it can sit on the request hot path.

/** Upper bounds in seconds (Prometheus' `le`), increasing; the +Inf bucket is implicit. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface HistogramSnapshot {
  /** [upper bound, observations at or below it] pairs, cumulative; the last bound is Infinity. */
  readonly buckets: ReadonlyArray<readonly [number, number]>;
  readonly sum: number;
  readonly count: number;
}

export class Histogram {
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last slot is the +Inf bucket. */
  private readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[] = LATENCY_BUCKETS) {
    for (let i = 0; i < bounds.length; i++) {
      const b = bounds[i] as number;
      if (!Number.isFinite(b) || (i > 0 && b <= (bounds[i - 1] as number))) {
        throw new Error('histogram bounds must be finite and strictly increasing');
      }
    }
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Counts one observation (seconds). */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }

  /** Counts the time since `startedMs`, a performance.now() reading. */
  observeSince(startedMs: number): void {
    this.observe((performance.now() - startedMs) / 1000);
  }

  snapshot(): HistogramSnapshot {
    const buckets: Array<readonly [number, number]> = [];
    let running = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      running += this.counts[i] as number;
      buckets.push([i < this.bounds.length ? (this.bounds[i] as number) : Infinity, running]);
    }
    return { buckets, sum: this.sum, count: this.count };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** The S3 request methods timed one by one; anything else counts as "other". */
export const S3_OPERATIONS = ['GET', 'PUT', 'DELETE', 'HEAD', 'LIST', 'other'] as const;
export type S3Operation = (typeof S3_OPERATIONS)[number];

/** Durations of single S3 requests (one attempt each: a retried request counts once per try). */
export class S3Latencies {
  readonly byOperation: Readonly<Record<S3Operation, Histogram>> = {
    GET: new Histogram(),
    PUT: new Histogram(),
    DELETE: new Histogram(),
    HEAD: new Histogram(),
    LIST: new Histogram(),
    other: new Histogram(),
  };

  /** `startedMs`: a performance.now() reading taken when the request went out. */
  observeSince(method: string, startedMs: number): void {
    const h = this.byOperation;
    const seconds = (performance.now() - startedMs) / 1000;
    switch (method) {
      case 'GET':
        return h.GET.observe(seconds);
      case 'PUT':
        return h.PUT.observe(seconds);
      case 'DELETE':
        return h.DELETE.observe(seconds);
      case 'HEAD':
        return h.HEAD.observe(seconds);
      case 'LIST':
        return h.LIST.observe(seconds);
      default:
        return h.other.observe(seconds);
    }
  }
}

/** Sizes of the kernel's requests, in bytes: up to 1 MiB with FUSE 3's max_pages. */
export const REQUEST_SIZE_BUCKETS: readonly number[] = [4096, 16384, 65536, 131072, 262144, 524288, 1048576];

/**
 * FUSE reads and writes of the backed file: durations (request to answer) and sizes. Reads and
 * writes the FUSE session answers itself, through the block cache's map, are counted apart.
 */
export class FuseRequests {
  readonly read = new Histogram();
  readonly write = new Histogram();
  readonly readBytes = new Histogram(REQUEST_SIZE_BUCKETS);
  readonly writeBytes = new Histogram(REQUEST_SIZE_BUCKETS);
  readonly sessionRead = new Histogram();
  readonly sessionReadBytes = new Histogram(REQUEST_SIZE_BUCKETS);
  readonly sessionWrite = new Histogram();
  readonly sessionWriteBytes = new Histogram(REQUEST_SIZE_BUCKETS);
}
