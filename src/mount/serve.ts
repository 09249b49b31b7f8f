// The third step of a mount: the bucket is marked mounted, then the FUSE session starts serving
// the stack (the flag goes up before the file appears, so whoever sees the file sees a marked
// bucket, and comes down again if the session is refused). The background listing, the stats
// mirror and /metrics start with it.

import type { Config } from '../config/config';
import { FuseFrontEnd } from '../fuse/fuseFrontEnd';
import { startSession, type MountedSession } from '../fuse/fuseSession';
import type { Logger } from '../util/log';
import { ConfigError } from '../errors';
import { StatsMirror } from '../stats/statsMirror';
import type { Assembled } from './assemble';
import { listInBackground, type BackgroundListing } from './backgroundListing';
import type { MountStatistics } from './mountStatistics';
import { claimMountedFlag, isSharedFlag, newMountToken, releaseMountedFlag, SHARED_DISK_TOKEN, type FlagClaim } from './mountedFlag';
import type { Preflight } from './preflight';

export interface Served {
  readonly session: MountedSession;
  readonly frontEnd: FuseFrontEnd;
  readonly listing: BackgroundListing | undefined;
  readonly statsMirror: StatsMirror | undefined;
  /** Clears the flag this mount set (nothing for read-only and shared mounts). */
  releaseFlag(): Promise<void>;
}

export async function serve(
  config: Config,
  checked: Preflight,
  built: Assembled,
  stats: MountStatistics,
  log: Logger,
  onCommit?: () => void,
): Promise<Served> {
  const { objects, naming, flag, geometry, mountpoint, metricsServer } = checked;
  const { stack, cacheFile } = built;
  const frontEnd = new FuseFrontEnd(
    stack.data,
    {
      renderStats: stats.text,
      resetStats: stats.reset,
      requests: stats.fuseRequests,
      noteHits: (blocks) => stack.blockCache?.noteHits(blocks),
      takeWritten: (final) => {
        // Closing: what the session took so far is flushed; later writes must fail in the stack.
        if (final) stack.blockMap?.allowWrites(0);
        const written = stack.blockMap?.takeWritten();
        if (written !== undefined && written.length > 0) stack.top.noteWritten?.(written);
      },
    },
    log,
  );
  // What the file holds reads block 0 first (a filesystem's superblock, a partition table, the
  // probe of mount or blkid): fetched while the flag goes up and the session starts, that first
  // read is answered from the cache instead of waiting for S3.
  stack.blockCache?.warm([0]);
  // From here the bucket changes: a stop must now come as an unmount.
  onCommit?.();
  // Read-only mounts leave the flag alone, as upstream; shared ones write the shared token unless
  // it is there already, and leave it up (it marks the disk as shared, not one mount).
  let claim: FlagClaim | undefined;
  if (!config.readOnly && !(config.sharedDiskMode && isSharedFlag(flag))) {
    const token = config.sharedDiskMode ? SHARED_DISK_TOKEN : newMountToken();
    claim = await claimMountedFlag(objects, naming, token, flag, log);
    if (!config.sharedDiskMode) cacheFile?.slots.setMountToken(token);
  }
  const ownFlag = config.sharedDiskMode ? undefined : claim;
  const releaseFlag = (): Promise<void> => (ownFlag ? releaseMountedFlag(objects, naming, ownFlag, log) : Promise.resolve());
  // Begun before the file appears: the first write to it is then one the listing knows about.
  const listing =
    config.listBlocks && stack.zeroCache
      ? listInBackground(stack.zeroCache, { threads: config.listBlocksThreads, quiet: config.quiet }, log)
      : undefined;
  let session: MountedSession;
  try {
    // default_permissions always, as upstream: without it FUSE checks no mode at all, and with
    // allow_other every local user could read and write a 0600 disk.
    session = startSession(
      {
        mountpoint,
        filename: config.filename,
        statsFilename: config.statsFilename,
        fileMode: config.fileMode,
        blockSize: geometry.blockSize,
        numBlocks: geometry.numBlocks,
        readOnly: config.readOnly,
        directIO: config.directIO,
        description: objects.description,
        fuseOptions: config.fuseOptions,
        blockMap: stack.blockMap,
      },
      frontEnd,
      log,
    );
  } catch (err) {
    await listing?.stop();
    // A refused mount leaves nothing mounted (the session unmounts a failed handshake itself).
    await releaseFlag().catch(() => {});
    throw new ConfigError((err as Error).message);
  }
  log.info(`mounted ${objects.description} on ${mountpoint}`);
  const statsMirror = config.statsMirror && new StatsMirror({ ...config.statsMirror, render: stats.text, reset: stats.reset }, log);
  statsMirror?.start();
  if (metricsServer) {
    metricsServer.serve({ prometheus: stats.prometheus, json: stats.json });
    log.info(`metrics on ${metricsServer.url}/metrics and /stats.json`);
  }
  return { session, frontEnd, listing, statsMirror, releaseFlag };
}
