// Upstream's http_* and curl_* counters, kept by the object store and the block backend; the
// curl_* ones describe our own HTTP client as upstream's describe libcurl.

import { ratio, seconds, totalSeconds, type StatLine, type StatsSource } from '../stats/stats';
import { S3Latencies } from '../stats/latency';
import type { ConnectionCounters } from './s3/httpConnections';

export class HttpStats implements StatsSource {
  normalBlocksRead = 0;
  normalBlocksWritten = 0;
  zeroBlocksRead = 0;
  zeroBlocksWritten = 0;
  gets = 0;
  puts = 0;
  deletes = 0;
  /** Multi-object deletes (POST ?delete, TRIM and --erase; retries not counted) and the keys they deleted. */
  multiDeletes = 0;
  multiDeletedKeys = 0;
  getTimeMs = 0;
  putTimeMs = 0;
  deleteTimeMs = 0;
  unauthorized = 0;
  forbidden = 0;
  stale = 0;
  verified = 0;
  mismatch = 0;
  redirects = 0;
  serverErrors = 0;
  clientErrors = 0;
  otherStatusErrors = 0;
  redirectErrors = 0;
  /** Requests sent on a new connection, and on a kept-alive one (upstream: cURL handles). */
  readonly connections: ConnectionCounters = { created: 0, reused: 0, bytesSent: 0, bytesReceived: 0, bodyBytesCopied: 0, resent: 0 };
  timeouts = 0;
  connectFailures = 0;
  unknownHosts = 0;
  transportErrors = 0;
  canceledWrites = 0;
  retries = 0;
  retryDelayMs = 0;
  /** Per-request durations by operation (for --metricsPort); kept across resetStats(). */
  readonly latency = new S3Latencies();

  constructor(
    /** With --listBlocks upstream prints two more lines. */
    private readonly listBlocks = false,
  ) {}

  /** Counts one failed attempt by its HTTP status, or without an answer by its error code. */
  countError(status: number | undefined, code?: string): void {
    if (status === undefined) this.countTransportError(code);
    else if (status === 401) this.unauthorized++;
    else if (status === 403) this.forbidden++;
    else if (status === 412) this.stale++;
    else if ([301, 302, 307, 308].includes(status)) this.redirects++;
    else if (status >= 300 && status < 400) this.redirectErrors++;
    else if (status >= 400 && status < 500) this.clientErrors++;
    else if (status >= 500 && status < 600) this.serverErrors++;
    else this.otherStatusErrors++;
  }

  private countTransportError(code: string | undefined): void {
    if (code === 'ETIMEDOUT' || code === 'TimeoutError') this.timeouts++;
    else if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL')
      this.connectFailures++;
    else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL') this.unknownHosts++;
    else this.transportErrors++;
  }

  statsLines(): readonly StatLine[] {
    const { created, reused } = this.connections;
    return [
      ['http_normal_blocks_read', this.normalBlocksRead],
      ['http_normal_blocks_written', this.normalBlocksWritten],
      ['http_zero_blocks_read', this.zeroBlocksRead],
      ['http_zero_blocks_written', this.zeroBlocksWritten],
      // Upstream's newest still prints these with --listBlocks, and they stay 0 there too: the
      // listing's knowledge lives in the zero cache (zero_block_cache_*), here as there.
      ...(this.listBlocks
        ? ([
            ['http_empty_blocks_read', 0],
            ['http_empty_blocks_written', 0],
          ] as const)
        : []),
      ['http_gets', this.gets],
      ['http_puts', this.puts],
      ['http_deletes', this.deletes],
      ['http_avg_get_time', seconds(this.getTimeMs, this.gets)],
      ['http_avg_put_time', seconds(this.putTimeMs, this.puts)],
      ['http_avg_delete_time', seconds(this.deleteTimeMs, this.deletes)],
      ['http_unauthorized', this.unauthorized],
      ['http_forbidden', this.forbidden],
      ['http_stale', this.stale],
      ['http_redirect', this.redirects],
      ['http_verified', this.verified],
      ['http_mismatch', this.mismatch],
      ['http_5xx_error', this.serverErrors],
      ['http_4xx_error', this.clientErrors],
      ['http_3xx_error', this.redirectErrors],
      ['http_other_error', this.otherStatusErrors],
      ['http_canceled_writes', this.canceledWrites],
      ['http_num_retries', this.retries],
      ['http_total_retry_delay', totalSeconds(this.retryDelayMs)],
      ['curl_handle_reuse_ratio', ratio(reused, created + reused, 4)],
      ['curl_timeouts', this.timeouts],
      ['curl_connect_failed', this.connectFailures],
      ['curl_host_unknown', this.unknownHosts],
      // Node ends the process when memory runs out: there is never a request to count here.
      ['curl_out_of_memory', 0],
      ['curl_other_error', this.transportErrors],
    ];
  }

  extraStatsLines(): readonly StatLine[] {
    // Upstream sends them too (its NBD trim) but counts them nowhere.
    return [
      ['http_multi_deletes', this.multiDeletes],
      ['http_multi_deleted_keys', this.multiDeletedKeys],
      // S3 traffic, heads and bodies as HTTP carries them (before TLS), retries included.
      ['http_bytes_sent', this.connections.bytesSent],
      ['http_bytes_received', this.connections.bytesReceived],
      ['http_resent_on_new_connection', this.connections.resent],
    ];
  }

  resetStats(): void {
    // The histograms stay: the S3 client holds them, and Prometheus wants them monotonic.
    Object.assign(this, new HttpStats(this.listBlocks), { latency: this.latency, connections: this.connections });
    Object.assign(this.connections, { created: 0, reused: 0, bytesSent: 0, bytesReceived: 0, bodyBytesCopied: 0, resent: 0 });
  }
}
