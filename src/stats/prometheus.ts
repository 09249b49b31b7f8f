// The statistics in Prometheus' text exposition format (version 0.0.4), and as a JSON object.
// Every stats-file line becomes one metric named s3backer_<line name>: counters get the _total
// suffix, times are in seconds; lines this table does not know still appear, as gauges.

import { allStatsLines, type StatsSource, type StatValue } from './stats';
import type { Histogram } from './latency';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Kind = 'counter' | 'gauge';

interface StatMetric {
  readonly kind: Kind;
  readonly help: string;
  /** The metric's name without prefix and suffix when it is not the stats line's name. */
  readonly name?: string;
}

const counter = (help: string, name?: string): StatMetric => ({ kind: 'counter', help, ...(name ? { name } : {}) });
const gauge = (help: string, name?: string): StatMetric => ({ kind: 'gauge', help, ...(name ? { name } : {}) });

/** The stats file's lines (stats.ts and its sources), by name. */
const STAT_METRICS: Readonly<Record<string, StatMetric>> = {
  http_normal_blocks_read: counter('Blocks read from S3 that held data'),
  http_normal_blocks_written: counter('Blocks written to S3 that held data'),
  http_zero_blocks_read: counter('Block reads that found no object (all zeros)'),
  http_zero_blocks_written: counter('All-zero blocks written (their objects deleted)'),
  http_gets: counter('Block GET operations (retries not counted)'),
  http_puts: counter('Block PUT operations (retries not counted)'),
  http_deletes: counter('Block DELETE operations (retries not counted)'),
  http_avg_get_time: gauge('Average time of a block GET operation, retries included', 'http_avg_get_time_seconds'),
  http_avg_put_time: gauge('Average time of a block PUT operation, retries included', 'http_avg_put_time_seconds'),
  http_avg_delete_time: gauge('Average time of a block DELETE operation, retries included', 'http_avg_delete_time_seconds'),
  http_unauthorized: counter('S3 requests answered 401 Unauthorized'),
  http_forbidden: counter('S3 requests answered 403 Forbidden'),
  http_stale: counter('S3 requests answered 412 Precondition Failed'),
  http_redirect: counter('S3 requests answered with a redirect (301, 302, 307, 308): wrong region or --vhost?'),
  http_verified: counter('Conditional GETs that found the block unchanged'),
  http_mismatch: counter('Blocks that failed verification, authentication or decoding'),
  http_5xx_error: counter('S3 requests answered with a 5xx status'),
  http_4xx_error: counter('S3 requests answered with a 4xx status other than 401, 403, 404 and 412'),
  http_3xx_error: counter('S3 requests answered with a 3xx status other than a redirect'),
  http_other_error: counter('S3 requests answered with a status outside 300-599'),
  http_canceled_writes: counter("Block uploads canceled by a newer write (upstream's counter)"),
  http_num_retries: counter('S3 requests retried'),
  http_total_retry_delay: counter('Time spent pausing before retries', 'http_retry_delay_seconds'),
  curl_handle_reuse_ratio: gauge('Fraction of S3 requests sent on a kept-alive connection (upstream: cURL handles reused)'),
  curl_timeouts: counter('S3 requests that timed out (--timeout)'),
  curl_connect_failed: counter('S3 requests whose connection could not be made'),
  curl_host_unknown: counter('S3 requests whose host name did not resolve'),
  curl_out_of_memory: counter('S3 requests that failed for lack of memory (never, here)'),
  curl_other_error: counter('S3 requests that failed without an answer for another reason (reset, cut short, garbled)'),
  http_empty_blocks_read: counter(
    "Upstream's count of reads answered from the listing below the cache (always 0, as in upstream's newest)",
  ),
  http_empty_blocks_written: counter(
    "Upstream's count of zero writes skipped by the listing below the cache (always 0, as in upstream's newest)",
  ),
  block_cache_current_size: gauge('Blocks in the block cache'),
  block_cache_initial_size: gauge('Blocks loaded from the cache file at mount'),
  block_cache_dirty_ratio: gauge('Fraction of the block cache that is dirty'),
  block_cache_read_hits: counter('Block reads answered by the block cache'),
  block_cache_read_misses: counter('Block reads the block cache had to fetch'),
  block_cache_read_hit_ratio: gauge('Fraction of block reads answered by the block cache'),
  block_cache_write_hits: counter('Block writes to blocks already in the block cache'),
  block_cache_write_misses: counter('Block writes to blocks not in the block cache'),
  block_cache_write_hit_ratio: gauge('Fraction of block writes to blocks already in the block cache'),
  block_cache_verified: counter('Cache file blocks checked against S3 and reused'),
  block_cache_mismatch: counter('Cache file blocks that differed from S3 and were refreshed'),
  block_cache_upload_errors: counter('Uploads that failed after all retries (the blocks stay dirty)'),
  block_cache_zero_uploads_skipped: counter('All-zero uploads of blocks S3 already lacked, sent no DELETE'),
  block_cache_discarded_dirty: counter('Dirty blocks a TRIM superseded before they were uploaded'),
  block_cache_held: gauge('Blocks kept in place against a reader looping over more blocks than the cache holds'),
  block_cache_loop_holds: counter('Times the block cache began to hold blocks against such a loop'),
  zero_block_cache_size: gauge('Blocks known to be all zeros'),
  zero_block_cache_read_hits: counter('Block reads answered by the zero block cache'),
  zero_block_cache_write_hits: counter('All-zero block writes skipped by the zero block cache'),
  md5_cache_current_size: gauge('Blocks whose MD5 the eventual-consistency guard remembers'),
  md5_cache_data_hits: counter('Reads of recently written blocks whose data matched the remembered MD5'),
  md5_cache_full_delays: counter("Time writes waited because the guard's MD5 cache was full", 'md5_cache_full_delay_seconds'),
  md5_cache_write_delays: counter('Time writes waited for --minWriteDelay', 'md5_cache_write_delay_seconds'),
  out_of_memory_errors: counter('Allocation failures (never counted here: Node ends the process on one)'),
  md5_cache_stale_reads: counter('Reads the guard caught returning old data'),
  http_multi_deletes: counter('Multi-object delete requests (POST ?delete, up to 1000 keys each; retries not counted)'),
  http_multi_deleted_keys: counter('Objects deleted by multi-object deletes'),
  discard_requests: counter('TRIM / discard requests (fallocate PUNCH_HOLE or ZERO_RANGE)'),
  discarded_blocks: counter('Whole blocks dropped by TRIM / discard requests'),
  http_bytes_sent: counter('Bytes of S3 requests sent, heads and bodies (HTTP, before TLS), retries included', 'http_sent_bytes'),
  http_bytes_received: counter('Bytes of S3 answers received, heads and bodies (HTTP, after TLS), retries included', 'http_received_bytes'),
  http_resent_on_new_connection: counter('Requests sent again at once on a new connection: the kept-alive one closed before any answer'),
  block_cache_dirty_blocks: gauge('Blocks written and not yet in S3'),
  block_cache_uploads_in_flight: gauge('Block uploads under way'),
  block_cache_fetches_in_flight: gauge('Block fetches into the cache under way (demand misses and read-ahead)'),
};

/** A stats value as a number: counts as they are, "1.234 sec" in seconds, "12 blocks" 12; NaN if not numeric. */
export function numericValue(value: StatValue): number {
  if (typeof value === 'number') return value;
  const m = /^\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*(?:sec|blocks)?\s*$/i.exec(value);
  return m ? Number(m[1]) : NaN;
}

export type StatsJSON = Record<string, number | string>;

/** The stats file's lines as one object: the same names, numbers wherever they are numeric. */
export function statsJSON(sources: readonly StatsSource[]): StatsJSON {
  const out: StatsJSON = {};
  for (const [name, value] of allStatsLines(sources)) {
    const n = numericValue(value);
    out[name] = Number.isNaN(n) ? value : n;
  }
  return out;
}

/** One labeled histogram family, e.g. request durations by operation. */
export interface HistogramFamily {
  readonly name: string;
  readonly help: string;
  readonly series: ReadonlyArray<{ readonly labels: Readonly<Record<string, string>>; readonly histogram: Histogram }>;
}

/** A metric of its own, named in full (no prefix added): the process's, the build's. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly samples: ReadonlyArray<{ readonly labels: Readonly<Record<string, string>>; readonly value: number }>;
}

export interface PrometheusInput {
  readonly stats: readonly StatsSource[];
  readonly histograms?: readonly HistogramFamily[];
  readonly families?: readonly MetricFamily[];
  /** Every metric's name starts with this. */
  readonly prefix?: string;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabel(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample value or `le` bound as the format writes it. */
export function formatValue(n: number): string {
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  if (Number.isNaN(n)) return 'NaN';
  return String(n);
}

function sanitize(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[a-zA-Z_:]/.test(s) ? s : `_${s}`;
}

function labelText(labels: Readonly<Record<string, string>>, extra?: string): string {
  const parts = Object.entries(labels).map(([k, v]) => `${sanitize(k)}="${escapeLabel(v)}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export function renderPrometheus({ stats, histograms = [], families = [], prefix = 's3backer_' }: PrometheusInput): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const [statName, value] of allStatsLines(stats)) {
    const n = numericValue(value);
    if (Number.isNaN(n)) continue; // not a number: nothing Prometheus can hold
    const known = STAT_METRICS[statName];
    const kind: Kind = known?.kind ?? 'gauge';
    const base = sanitize(`${prefix}${known?.name ?? statName}`);
    const name = kind === 'counter' ? `${base}_total` : base;
    if (seen.has(name)) continue;
    seen.add(name);
    lines.push(`# HELP ${name} ${escapeHelp(known?.help ?? `the stats file's ${statName}`)}`);
    lines.push(`# TYPE ${name} ${kind}`);
    lines.push(`${name} ${formatValue(n)}`);
  }
  for (const family of histograms) {
    const name = sanitize(`${prefix}${family.name}`);
    lines.push(`# HELP ${name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${name} histogram`);
    for (const { labels, histogram } of family.series) {
      const snap = histogram.snapshot();
      for (const [le, count] of snap.buckets) lines.push(`${name}_bucket${labelText(labels, `le="${formatValue(le)}"`)} ${count}`);
      lines.push(`${name}_sum${labelText(labels)} ${formatValue(snap.sum)}`);
      lines.push(`${name}_count${labelText(labels)} ${snap.count}`);
    }
  }
  for (const family of families) {
    const name = sanitize(family.name);
    lines.push(`# HELP ${name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${name} ${family.type}`);
    for (const { labels, value } of family.samples) lines.push(`${name}${labelText(labels)} ${formatValue(value)}`);
  }
  return lines.join('\n') + '\n';
}
