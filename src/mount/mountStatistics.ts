// What a mount tells about itself: the stats file's text (upstream's lines), the same as JSON,
// and /metrics in Prometheus' format with the process's figures and the latency histograms.

import type { HttpStats } from '../backend/httpStats';
import { renderStats, type StatsSource } from '../stats/stats';
import { renderPrometheus, statsJSON, type StatsJSON } from '../stats/prometheus';
import { FuseRequests, S3_OPERATIONS } from '../stats/latency';
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
          series: [
            { labels: { operation: 'read', answered_in: 'stack' }, histogram: fuseRequests.read },
            { labels: { operation: 'read', answered_in: 'session' }, histogram: fuseRequests.sessionRead },
            { labels: { operation: 'write', answered_in: 'stack' }, histogram: fuseRequests.write },
            { labels: { operation: 'write', answered_in: 'session' }, histogram: fuseRequests.sessionWrite },
          ],
        },
        {
          name: 'fuse_request_bytes',
          help: 'Sizes of FUSE reads and writes of the backed file as the kernel sent them; answered_in="session": through the block map, without JS',
          series: [
            { labels: { operation: 'read', answered_in: 'stack' }, histogram: fuseRequests.readBytes },
            { labels: { operation: 'read', answered_in: 'session' }, histogram: fuseRequests.sessionReadBytes },
            { labels: { operation: 'write', answered_in: 'stack' }, histogram: fuseRequests.writeBytes },
            { labels: { operation: 'write', answered_in: 'session' }, histogram: fuseRequests.sessionWriteBytes },
          ],
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
