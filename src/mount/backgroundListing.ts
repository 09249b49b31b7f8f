// --listBlocks: the listing runs while the mount is served. Blocks it has not covered yet are
// read from the store as without --listBlocks; a failure is reported once and changes nothing
// else; an unmount stops it (its requests and retry pauses end at once).

import type { ZeroCache } from '../layers/zeroCache';
import type { Logger } from '../util/log';
import { createProgress } from '../util/progress';

export interface BackgroundListing {
  /** Stops the listing if it still runs, and resolves once it has ended. */
  stop(): Promise<void>;
}

export interface BackgroundListingOptions {
  readonly threads: number;
  readonly quiet: boolean;
}

class ListingStopped extends Error {
  constructor() {
    super('stopped by the unmount');
  }
}

export function listInBackground(zeroCache: ZeroCache, options: BackgroundListingOptions, log: Logger): BackgroundListing {
  const controller = new AbortController();
  const started = Date.now();
  const progress = createProgress('non-zero blocks found', undefined, { quiet: options.quiet });
  const secs = (): string => ((Date.now() - started) / 1000).toFixed(1);
  const ended = zeroCache
    .learnFromListing({ threads: options.threads, signal: controller.signal, onProgress: progress.update })
    .finally(progress.finish)
    .then(
      (found) => log.info(`found ${found} non-zero blocks in ${secs()} s`),
      (err: unknown) => {
        if (controller.signal.aborted) log.info(`listing of the blocks stopped by the unmount after ${secs()} s`);
        else
          log.warn(
            `listing the blocks failed after ${secs()} s (${(err as Error).message}); blocks it did not cover are read from the store`,
          );
      },
    );
  return {
    async stop() {
      controller.abort(new ListingStopped());
      await ended;
    },
  };
}
