// What a mount tells about itself: the stats file's text (upstream's lines), the same as JSON,
// and /metrics in Prometheus' format with the process's figures and the latency histograms.

import type { HttpStats } from '../backend/httpStats';
import { renderStats, type StatsSource } from '../stats/stats';
import { renderPrometheus, statsJSON, type StatsJSON } from '../stats/prometheus';
import { FuseRequests, S3_OPERATIONS, type Histogram } from '../stats/latency';
import { ProcessMetrics } from '../stats/processMetrics';
import { version } from '../version';

export interface MountStatistics {
  /** Timings and sizes of the FUSE requests, filled by the front end. */
  readonly fuseRequests: FuseRequests;
  readonly text: () => string;
  /** Removing the stats file (or its mirror) resets the counters, as upstream. */
  readonly reset: () => void;
  readonly json: () => StatsJSON;
  readonly prometheus: () => string;
  close(): void;
}

export function mountStatistics(
  sources: readonly StatsSource[],
  httpStats: HttpStats,
  bucket: string,
  mountpoint: string,
): MountStatistics {
  const fuseRequests = new FuseRequests();
  // Made at the first scrape (its event-loop monitor runs from then on), for /metrics and the API alike.
  let processMetrics: ProcessMetrics | undefined;
  const prometheus = (): string =>
    renderPrometheus({
      stats: sources,
      families: (processMetrics ??= new ProcessMetrics({ version, node: process.version, bucket, mountpoint })).families(),
      histograms: [
        {
          name: 's3_request_duration_seconds',
          help: 'Duration of single S3 requests (each retry counts on its own), by operation',
          series: S3_OPERATIONS.map((op) => ({ labels: { operation: op }, histogram: httpStats.latency.byOperation[op] })),
        },
        {
          name: 'fuse_request_duration_seconds',
          help: 'Duration of FUSE reads and writes of the backed file, by operation and where they were answered',
          series: fuseSeries(fuseRequests, ''),
        },
        {
          name: 'fuse_request_bytes',
          help: 'Sizes of FUSE reads and writes of the backed file as the kernel sent them; answered_in="session": through the block map, without JS',
          series: fuseSeries(fuseRequests, 'Bytes'),
        },
      ],
    });
  return {
    fuseRequests,
    text: () => renderStats(sources),
    reset: () => sources.forEach((s) => s.resetStats()),
    json: () => statsJSON(sources),
    prometheus,
    close: () => processMetrics?.close(),
  };
}

/** One series per operation and where it was answered: the durations ('') or the sizes ('Bytes'). */
function fuseSeries(r: FuseRequests, figure: '' | 'Bytes'): Array<{ labels: Record<string, string>; histogram: Histogram }> {
  return (['read', 'write'] as const).flatMap((op) =>
    (['stack', 'session'] as const).map((where) => {
      const name = where === 'stack' ? `${op}${figure}` : `session${op === 'read' ? 'Read' : 'Write'}${figure}`;
      return { labels: { operation: op, answered_in: where }, histogram: r[name as keyof FuseRequests] };
    }),
  );
}
