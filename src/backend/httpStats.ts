// Upstream's http_* counters, kept by the object store and the block backend.

import { seconds, type StatsSource, type StatValue } from '../stats/stats';
import { S3Latencies } from '../stats/latency';

export class HttpStats implements StatsSource {
  normalBlocksRead = 0;
  normalBlocksWritten = 0;
  zeroBlocksRead = 0;
  zeroBlocksWritten = 0;
  gets = 0;
  puts = 0;
  deletes = 0;
  getTimeMs = 0;
  putTimeMs = 0;
  deleteTimeMs = 0;
  unauthorized = 0;
  forbidden = 0;
  stale = 0;
  verified = 0;
  mismatch = 0;
  serverErrors = 0;
  clientErrors = 0;
  otherErrors = 0;
  canceledWrites = 0;
  retries = 0;
  retryDelayMs = 0;
  /** Per-request durations by operation (for --metricsPort); kept across resetStats(). */
  readonly latency = new S3Latencies();

  /** Counts one failed attempt by its HTTP status (undefined: no response at all). */
  countError(status: number | undefined): void {
    if (status === 401) this.unauthorized++;
    else if (status === 403) this.forbidden++;
    else if (status !== undefined && status >= 500) this.serverErrors++;
    else if (status !== undefined && status >= 400) this.clientErrors++;
    else this.otherErrors++;
  }

  statsLines(): ReadonlyArray<readonly [string, StatValue]> {
    return [
      ['http_normal_blocks_read', this.normalBlocksRead],
      ['http_normal_blocks_written', this.normalBlocksWritten],
      ['http_zero_blocks_read', this.zeroBlocksRead],
      ['http_zero_blocks_written', this.zeroBlocksWritten],
      ['http_gets', this.gets],
      ['http_puts', this.puts],
      ['http_deletes', this.deletes],
      ['http_avg_get_time', seconds(this.getTimeMs, this.gets)],
      ['http_avg_put_time', seconds(this.putTimeMs, this.puts)],
      ['http_avg_delete_time', seconds(this.deleteTimeMs, this.deletes)],
      ['http_unauthorized', this.unauthorized],
      ['http_forbidden', this.forbidden],
      ['http_stale', this.stale],
      ['http_verified', this.verified],
      ['http_mismatch', this.mismatch],
      ['http_5xx_error', this.serverErrors],
      ['http_4xx_error', this.clientErrors],
      ['http_other_error', this.otherErrors],
      ['http_canceled_writes', this.canceledWrites],
      ['http_num_retries', this.retries],
      ['http_total_retry_delay', `${(this.retryDelayMs / 1000).toFixed(3)} sec`],
    ];
  }

  resetStats(): void {
    // The histograms stay: the S3 client holds them, and Prometheus wants them monotonic.
    Object.assign(this, new HttpStats(), { latency: this.latency });
  }
}
