// Mounting: every check that can fail runs before FUSE mounts, and the mounted flag is set only
// once the FUSE mount is up; unmounting flushes everything to the store before the flag clears.

import { promises as fs } from 'node:fs';
import type { Config } from '../config/config';
import { formatSize } from '../util/sizes';
import { HttpStats } from '../backend/httpStats';
import { renderStats } from '../stats/stats';
import { renderPrometheus, statsJSON, type StatsJSON } from '../stats/prometheus';
import { FuseRequests, S3_OPERATIONS } from '../stats/latency';
import { MetricsServer } from '../stats/metricsServer';
import { ProcessMetrics } from '../stats/processMetrics';
import { version } from '../version';
import { StatsMirror } from '../stats/statsMirror';
import { FuseFrontEnd } from '../fuse/fuseFrontEnd';
import { startSession, type MountedSession } from '../fuse/fuseSession';
import { buildStack, cacheSlots } from './stack';
import { openObjects } from './openObjects';
import { combineGeometry, detectGeometry, type ResolvedGeometry } from './geometry';
import {
  admitMount,
  claimMountedFlag,
  isSharedFlag,
  newMountToken,
  readMountedFlag,
  releaseMountedFlag,
  SHARED_DISK_TOKEN,
  tokenValue,
  type FlagClaim,
} from './mountedFlag';
import { mountedFlagKey } from '../format/blockNames';
import { cacheFileToken, openCacheFile } from '../layers/cacheFile';
import { checkPassword, makeCodec } from './codecSetup';
import { isFuseMounted } from './mountTable';
import type { Logger } from '../util/log';
import { createProgress } from '../util/progress';
import { listInBackground } from './backgroundListing';
import { ConfigError, StoreError } from '../errors';

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

/**
 * How long a lazy unmount waits for the kernel to let go. Descriptors still open on the detached
 * mount (a loop device) keep it alive past that; their requests then fail, as upstream's do.
 */
const LAZY_UNMOUNT_GRACE_MS = 200;

/** Between two attempts to store what an unmount found unsaved (the cache also backs off itself). */
const UNMOUNT_RETRY_PAUSE_MS = 1000;

async function checkMountpoint(mountpoint: string): Promise<void> {
  let stat;
  try {
    stat = await fs.stat(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      throw new ConfigError(`mountpoint ${mountpoint} is a stale FUSE mount: run "umount ${mountpoint}" (or "fusermount3 -u") first`);
    }
    throw new ConfigError(`mountpoint ${mountpoint} does not exist`);
  }
  if (!stat.isDirectory()) throw new ConfigError(`mountpoint ${mountpoint} is not a directory`);
  if (await isFuseMounted(mountpoint)) throw new ConfigError(`mountpoint ${mountpoint} is already a FUSE mount`);
}

export async function mount(config: Config, log: Logger): Promise<MountHandle> {
  const mountpoint = config.mountpoint;
  if (mountpoint === undefined) throw new ConfigError('no mountpoint given');
  const naming = { prefix: config.prefix, blockHashPrefix: config.blockHashPrefix };
  await checkMountpoint(mountpoint);
  // Bound before anything is marked mounted: a port in use fails the mount with nothing to undo.
  const metricsServer =
    config.metricsPort === undefined ? undefined : await MetricsServer.listen(config.metricsPort, config.metricsAddress);

  const httpStats = new HttpStats(config.listBlocks);
  let objects: ReturnType<typeof openObjects>;
  try {
    objects = openObjects(config, httpStats, log);
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }
  try {
    // The three opening requests go out together (one round trip, not three); the access check's
    // error is the one reported, so the others' failures wait until it has passed.
    const flagRead = readMountedFlag(objects, naming);
    const detected = config.noAutoDetect ? Promise.resolve(undefined) : detectGeometry(objects, naming);
    for (const p of [flagRead, detected]) p.catch(() => {});
    await objects.checkAccess();
    const flag = await flagRead;
    const cacheConfig = config.blockCache;
    // A set flag whose token is the cache file's was left by the mount that crashed using this
    // file; as upstream, that lets the mount through only when it recovers the dirty blocks.
    const cacheToken = cacheConfig.file === undefined ? 0 : cacheFileToken(cacheConfig.file);
    const ownCrash = flag.mounted && cacheConfig.recoverDirty && cacheToken !== 0 && tokenValue(flag.token) === cacheToken;
    admitMount(
      flag,
      {
        description: objects.description,
        flagKey: mountedFlagKey(naming),
        force: config.force,
        sharedDiskMode: config.sharedDiskMode,
        ownCrashCacheFile: ownCrash ? cacheConfig.file : undefined,
      },
      log,
    );
    const geometry = combineGeometry(config, await detected, log);
    log.info(
      `${objects.description}: ${geometry.numBlocks} blocks of ${formatSize(geometry.blockSize)} = ${formatSize(geometry.fileSize)}` +
        (geometry.detected ? ' (auto-detected)' : ''),
    );
    const codec = makeCodec(config, geometry.blockSize);
    if (codec.encrypted) await checkPassword(objects, { ...naming, blockSize: geometry.blockSize, numBlocks: geometry.numBlocks }, codec);
    const cacheFile =
      cacheConfig.file === undefined
        ? undefined
        : openCacheFile(cacheConfig.file, geometry.blockSize, cacheSlots(cacheConfig.size, geometry.numBlocks), log, {
            advise: cacheConfig.fileAdvise,
            // Its dirty blocks are to be uploaded: a resize must not leave any out.
            keepDirty: cacheConfig.recoverDirty && !config.readOnly && ownCrash,
          });

    const stack = buildStack(
      objects,
      {
        ...naming,
        blockSize: geometry.blockSize,
        numBlocks: geometry.numBlocks,
        defaultContentEncoding: config.defaultContentEncoding,
        blockCache: cacheConfig,
        codec,
        encodeWrites: config.codec.compression !== undefined || config.codec.cipher !== undefined,
        ecProtect: config.ecProtect && {
          ...config.ecProtect,
          initialRetryPauseMs: config.initialRetryPauseMs,
          maxRetryPauseMs: config.maxRetryPauseMs,
        },
        sharedDisk: config.sharedDiskMode,
      },
      httpStats,
      log,
      cacheFile?.slots,
    );
    if (cacheFile && stack.blockCache && cacheFile.entries.length > 0) {
      const dirtyFound = cacheFile.entries.filter((e) => e.dirty).length;
      // Dirty blocks are uploaded only for the mount that wrote them: anything else may be stale.
      const recover = cacheConfig.recoverDirty && !config.readOnly && ownCrash;
      if (dirtyFound > 0 && cacheConfig.recoverDirty && !recover) {
        log.warn(`cache file ${cacheConfig.file}: its mount token does not match the bucket's; not recovering its dirty blocks`);
      }
      const verifying = createProgress('cached blocks verified', undefined, { quiet: config.quiet });
      const r = await stack.blockCache
        .restore({ verify: !cacheConfig.noVerify, recoverDirty: recover, onProgress: verifying.update })
        .finally(verifying.finish);
      log.info(
        `cache file ${cacheConfig.file}: ${r.clean} clean blocks reused (${stack.blockCache.verified} verified, ` +
          `${stack.blockCache.mismatch} refreshed), ${r.dirty} dirty blocks to upload`,
      );
      if (r.discarded > 0) {
        log.warn(
          `cache file ${cacheConfig.file}: discarded ${r.discarded} dirty blocks a previous mount had not uploaded` +
            (cacheConfig.recoverDirty ? '' : ' (--blockCacheRecoverDirtyBlocks would upload them)'),
        );
      }
    }
    const statsText = (): string => renderStats(stack.statsSources);
    // Removing the stats file (or its mirror) resets the counters, as upstream.
    const resetStats = (): void => stack.statsSources.forEach((s) => s.resetStats());
    const fuseRequests = new FuseRequests();
    // Made at the first scrape (its event-loop monitor runs from then on), for /metrics and the API alike.
    let processMetrics: ProcessMetrics | undefined;
    const metricsText = (): string =>
      renderPrometheus({
        stats: stack.statsSources,
        families: (processMetrics ??= new ProcessMetrics({
          version,
          node: process.version,
          bucket: objects.description,
          mountpoint,
        })).families(),
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
    const jsonStats = (): StatsJSON => statsJSON(stack.statsSources);
    const frontEnd = new FuseFrontEnd(
      stack.data,
      {
        renderStats: statsText,
        resetStats,
        requests: fuseRequests,
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
    // The flag goes up before the file appears (whoever sees the file sees a marked bucket), and
    // comes down again if the mount fails. Read-only mounts leave it alone, as upstream; shared
    // ones write the shared token unless it is there already, and leave it up (it marks the disk
    // as shared, not one mount).
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
    const statsMirror = config.statsMirror && new StatsMirror({ ...config.statsMirror, render: statsText, reset: resetStats }, log);
    statsMirror?.start();
    if (metricsServer) {
      metricsServer.serve({ prometheus: metricsText, json: jsonStats });
      log.info(`metrics on ${metricsServer.url}/metrics and /stats.json`);
    }

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
          const kept = cacheConfig.file === undefined ? undefined : `they are kept in the cache file ${cacheConfig.file}`;
          const abandoned = await new Promise<boolean>((resolve) => {
            log.error(
              `unmount: ${unsaved} block${unsaved === 1 ? '' : 's'} not stored yet (${reason}); retrying until the store takes them` +
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
                ? `gave up storing ${unsaved} block${unsaved === 1 ? '' : 's'}: ${kept}; mount again with --blockCacheRecoverDirtyBlocks to upload them`
                : `gave up storing ${unsaved} block${unsaved === 1 ? '' : 's'}: their data is lost (${reason})`,
            );
          }
        }
      }
    };
    // Runs once the kernel mount is gone: nothing new can arrive, so flush and release.
    const finish = (): Promise<void> =>
      (shutdown ??= (async () => {
        await frontEnd.close();
        await metricsServer?.close();
        processMetrics?.close();
        await listing?.stop();
        try {
          await storeEverything();
        } finally {
          // The counters as the unmount left them (everything stored, or given up on).
          await statsMirror?.stop({ final: true });
        }
        await releaseFlag();
        await stack.top.close();
        // A clean end, as upstream marks it: the file's token no longer matches any mount.
        if (!config.readOnly) cacheFile?.slots.setMountToken(0);
        log.info(`unmounted ${mountpoint}`);
      })()
        .finally(() => session.release())
        .then(resolveClosed, (err: unknown) => {
          rejectClosed(err);
          throw err;
        }));
    void session.ended.then(() => finish().catch((err: unknown) => log.error(`unmount: ${(err as Error).message}`)));

    return {
      mountpoint,
      geometry,
      stats: statsText,
      statsJSON: jsonStats,
      metrics: metricsText,
      flush: () => stack.top.flush(),
      async unmount({ lazy = false } = {}) {
        if (await isFuseMounted(mountpoint)) session.unmount(lazy);
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
  } catch (err) {
    objects.close();
    await metricsServer?.close();
    throw err;
  }
}
