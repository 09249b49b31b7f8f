// The last step of a mount: once the kernel mount is gone (an unmount here, umount or fusermount3
// from outside, a lazy detach), nothing new can arrive, so everything is stored, then the mounted
// flag clears and the store closes. An unmount never drops unsaved data: while the store refuses
// it, the unmount keeps trying, until abandon() gives up on it (lost, unless a cache file keeps it).

import type { Config } from '../config/config';
import type { Logger } from '../util/log';
import { StoreError } from '../errors';
import type { Assembled } from './assemble';
import type { MountStatistics } from './mountStatistics';
import type { Preflight } from './preflight';
import type { Served } from './serve';
import { isFuseMounted } from './mountTable';

/**
 * How long a lazy unmount waits for the kernel to let go. Descriptors still open on the detached
 * mount (a loop device) keep it alive past that; their requests then fail, as upstream's do.
 */
const LAZY_UNMOUNT_GRACE_MS = 200;

/** Between two attempts to store what an unmount found unsaved (the cache also backs off itself). */
const UNMOUNT_RETRY_PAUSE_MS = 1000;

export interface Unmounting {
  unmount(options?: { lazy?: boolean }): Promise<void>;
  abandon(): boolean;
  /** Resolves when the mount has ended and everything is flushed, however it was unmounted. */
  readonly closed: Promise<void>;
}

const blocksText = (n: number): string => `${n} block${n === 1 ? '' : 's'}`;

export function superviseUnmount(
  config: Config,
  checked: Preflight,
  built: Assembled,
  served: Served,
  stats: MountStatistics,
  log: Logger,
): Unmounting {
  const { stack, cacheFile } = built;
  const { session, frontEnd, listing, statsMirror } = served;
  const cacheFileName = config.blockCache.file;
  let shutdown: Promise<void> | undefined;
  let resolveClosed!: () => void;
  let rejectClosed!: (err: unknown) => void;
  const closed = new Promise<void>((resolve, reject) => {
    resolveClosed = resolve;
    rejectClosed = reject;
  });
  closed.catch(() => {}); // reported through unmount() or the log; never an unhandled rejection
  // Set while an unmount waits on a store that refuses the unsaved blocks; calling it gives up.
  let giveUp: (() => void) | undefined;
  const storeEverything = async (): Promise<void> => {
    for (;;) {
      try {
        await stack.top.flush();
        return;
      } catch (err) {
        const unsaved = stack.blockCache?.dirtyCount ?? 0;
        if (unsaved === 0) throw err;
        const reason = (err as Error).message;
        const kept = cacheFileName === undefined ? undefined : `they are kept in the cache file ${cacheFileName}`;
        const abandoned = await new Promise<boolean>((resolve) => {
          log.error(
            `unmount: ${blocksText(unsaved)} not stored yet (${reason}); retrying until the store takes them` +
              (kept ? ` (${kept})` : '; interrupt s3backer again to give up on them (they would be lost)'),
          );
          const timer = setTimeout(() => resolve(false), UNMOUNT_RETRY_PAUSE_MS);
          giveUp = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        giveUp = undefined;
        if (abandoned) {
          throw new StoreError(
            kept
              ? `gave up storing ${blocksText(unsaved)}: ${kept}; mount again with --blockCacheRecoverDirtyBlocks to upload them`
              : `gave up storing ${blocksText(unsaved)}: their data is lost (${reason})`,
          );
        }
      }
    }
  };
  // Runs once the kernel mount is gone: nothing new can arrive, so flush and release.
  const finish = (): Promise<void> =>
    (shutdown ??= (async () => {
      await frontEnd.close();
      await checked.metricsServer?.close();
      stats.close();
      await listing?.stop();
      try {
        await storeEverything();
      } finally {
        // The counters as the unmount left them (everything stored, or given up on).
        await statsMirror?.stop({ final: true });
      }
      // The cache's memory is freed meanwhile (not by the exit after it): nothing reads it now.
      const retired = stack.blockCache?.retire().catch((err: unknown) => log.debug(`unmount: ${(err as Error).message}`));
      await served.releaseFlag();
      await stack.top.close();
      await retired;
      // A clean end, as upstream marks it: the file's token no longer matches any mount.
      if (!config.readOnly) cacheFile?.slots.setMountToken(0);
      log.info(`unmounted ${checked.mountpoint}`);
    })()
      .finally(() => session.release())
      .then(resolveClosed, (err: unknown) => {
        rejectClosed(err);
        throw err;
      }));
  void session.ended.then(() => finish().catch((err: unknown) => log.error(`unmount: ${(err as Error).message}`)));

  return {
    async unmount({ lazy = false } = {}) {
      if (await isFuseMounted(checked.mountpoint)) session.unmount(lazy);
      if (lazy) await Promise.race([session.ended, new Promise((resolve) => setTimeout(resolve, LAZY_UNMOUNT_GRACE_MS))]);
      else await session.ended;
      await finish();
    },
    abandon() {
      if (giveUp === undefined) return false;
      giveUp();
      return true;
    },
    closed,
  };
}
