// The process's own metrics for /metrics, under the names Prometheus' client libraries give them
// (process_*, nodejs_*), so dashboards made for those work here; read at scrape time only, so
// they cost the I/O path nothing. And the build's identity as an info metric.

import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import type { MetricFamily } from './prometheus';

export class ProcessMetrics {
  /**
   * How late the event loop ran its timers since the last scrape: requests the session hands to
   * JS (misses, partial writes, flushes) wait that long on top of their own work.
   */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor(private readonly build: Readonly<Record<string, string>>) {
    this.loopDelay.enable();
  }

  families(): MetricFamily[] {
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    const lag = this.loopDelay;
    const lagSeconds = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);
    const families: MetricFamily[] = [
      gauge('s3backer_build_info', "The running s3backer: its version, Node's, and what it mounts where (always 1)", 1, this.build),
      counter('process_cpu_user_seconds_total', 'User CPU time of the whole process (all threads)', cpu.user / 1e6),
      counter('process_cpu_system_seconds_total', 'System CPU time of the whole process (all threads)', cpu.system / 1e6),
      counter('process_cpu_seconds_total', 'User and system CPU time of the whole process', (cpu.user + cpu.system) / 1e6),
      gauge('process_resident_memory_bytes', "Resident memory (the block cache's slots included)", memory.rss),
      gauge(
        'process_start_time_seconds',
        'When the process started, in seconds since the epoch',
        Math.round(performance.timeOrigin) / 1000,
      ),
      gauge('nodejs_heap_size_used_bytes', 'V8 heap in use', memory.heapUsed),
      gauge('nodejs_heap_size_total_bytes', 'V8 heap reserved', memory.heapTotal),
      gauge('nodejs_external_memory_bytes', 'Memory of Buffers and other objects outside the V8 heap', memory.external),
      gauge('nodejs_eventloop_lag_mean_seconds', 'Mean event loop delay since the last scrape', lagSeconds(lag.mean)),
      gauge('nodejs_eventloop_lag_p50_seconds', 'Median event loop delay since the last scrape', lagSeconds(lag.percentile(50))),
      gauge(
        'nodejs_eventloop_lag_p99_seconds',
        '99th percentile of the event loop delay since the last scrape',
        lagSeconds(lag.percentile(99)),
      ),
      gauge('nodejs_eventloop_lag_max_seconds', 'Longest event loop delay since the last scrape', lagSeconds(lag.max)),
    ];
    lag.reset();
    const fds = openDescriptors();
    if (fds !== undefined) families.push(gauge('process_open_fds', 'Open file descriptors', fds));
    return families;
  }

  close(): void {
    this.loopDelay.disable();
  }
}

function gauge(name: string, help: string, value: number, labels: Readonly<Record<string, string>> = {}): MetricFamily {
  return { name, help, type: 'gauge', samples: [{ labels, value }] };
}

function counter(name: string, help: string, value: number): MetricFamily {
  return { name, help, type: 'counter', samples: [{ labels: {}, value }] };
}

function openDescriptors(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1; // less the one reading the directory
  } catch {
    return undefined;
  }
}
