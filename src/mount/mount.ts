// Mounting, in four steps a reader can follow: preflight (every check that can fail, before
// anything changes), assemble (the block stack, the cache file taken over), serve (the mounted
// flag up, then the FUSE session), and the unmount, which stores everything before the flag
// clears. A failure before serving closes what was opened and leaves the bucket unmarked.

import type { Config } from '../config/config';
import type { StatsJSON } from '../stats/prometheus';
import type { Logger } from '../util/log';
import { assemble } from './assemble';
import type { ResolvedGeometry } from './geometry';
import { mountStatistics } from './mountStatistics';
import { preflight } from './preflight';
import { serve } from './serve';
import { superviseUnmount } from './unmount';

export interface MountHandle {
  readonly mountpoint: string;
  readonly geometry: ResolvedGeometry;
  /** The statistics file's text. */
  stats(): string;
  /** The same statistics as one object: the stats file's names, numbers (times in seconds). */
  statsJSON(): StatsJSON;
  /** The statistics and latency histograms in Prometheus' text format (what --metricsPort serves). */
  metrics(): string;
  /** Resolves once every write so far is in the store. */
  flush(): Promise<void>;
  /**
   * Unmounts, flushes and clears the mounted flag. Fails while the mount is busy, unless `lazy`:
   * then the mount is detached at once (as libfuse does on SIGTERM) and descriptors still open
   * on it fail from then on; what was written before is stored.
   */
  unmount(options?: { lazy?: boolean }): Promise<void>;
  /**
   * An unmount never drops unsaved data: while the store refuses it, the unmount keeps trying.
   * abandon() gives up on it then (lost, unless a cache file keeps it) and the unmount rejects.
   * Returns false, doing nothing, when no unmount is waiting on a failing store.
   */
  abandon(): boolean;
  /** Resolves when the mount has ended and everything is flushed, however it was unmounted. */
  readonly closed: Promise<void>;
}

export interface MountHooks {
  /**
   * Called as the mount begins to change the bucket (its mounted flag), before the file appears:
   * from then on the mount must be ended by an unmount (once the handle comes), not by an exit.
   */
  readonly onCommit?: () => void;
}

export async function mount(config: Config, log: Logger, hooks: MountHooks = {}): Promise<MountHandle> {
  const checked = await preflight(config, log);
  try {
    const built = await assemble(config, checked, log);
    const stats = mountStatistics(built.stack.statsSources, checked.httpStats, checked.objects.description, checked.mountpoint);
    const served = await serve(config, checked, built, stats, log, hooks.onCommit);
    const unmounting = superviseUnmount(config, checked, built, served, stats, log);
    return {
      mountpoint: checked.mountpoint,
      geometry: checked.geometry,
      stats: stats.text,
      statsJSON: stats.json,
      metrics: stats.prometheus,
      flush: () => built.stack.top.flush(),
      unmount: (options) => unmounting.unmount(options),
      abandon: () => unmounting.abandon(),
      closed: unmounting.closed,
    };
  } catch (err) {
    await checked.close();
    throw err;
  }
}
