// The first step of a mount: every check that can fail runs here, before anything is changed.
// The mount point must be a directory that is not mounted, the metrics port free, the bucket
// reachable with these credentials, the mounted flag not held by another mount, the geometry
// consistent with what block 0 says and the password right. What it opened is closed again when
// a check fails; on success the caller owns it.

import { promises as fs } from 'node:fs';
import type { Config } from '../config/config';
import { formatSize } from '../util/sizes';
import { HttpStats } from '../backend/httpStats';
import type { ObjectStore } from '../backend/objectStore';
import { MetricsServer } from '../stats/metricsServer';
import { mountedFlagKey, type BlockNaming } from '../format/blockNames';
import { cacheFileToken } from '../layers/cacheFile';
import type { BlockCodec } from '../native/addon';
import type { Logger } from '../util/log';
import { ConfigError } from '../errors';
import { openObjects } from './openObjects';
import { combineGeometry, detectGeometry, type ResolvedGeometry } from './geometry';
import { admitMount, readMountedFlag, tokenValue, type MountedFlagState } from './mountedFlag';
import { checkPassword, makeCodec } from './codecSetup';
import { isFuseMounted } from './mountTable';

export interface Preflight {
  readonly mountpoint: string;
  readonly naming: BlockNaming;
  /** Bound to its port, not serving yet. */
  readonly metricsServer: MetricsServer | undefined;
  readonly httpStats: HttpStats;
  readonly objects: ObjectStore;
  /** The mounted flag as read (a mount that may go ahead). */
  readonly flag: MountedFlagState;
  /** The flag was left by the crashed mount that used this cache file: its dirty blocks may be recovered. */
  readonly ownCrash: boolean;
  readonly geometry: ResolvedGeometry;
  readonly codec: BlockCodec;
  /** Closes what preflight opened, for a mount that fails later. */
  close(): Promise<void>;
}

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

export async function preflight(config: Config, log: Logger): Promise<Preflight> {
  const mountpoint = config.mountpoint;
  if (mountpoint === undefined) throw new ConfigError('no mountpoint given');
  const naming = { prefix: config.prefix, blockHashPrefix: config.blockHashPrefix };
  await checkMountpoint(mountpoint);
  // Bound before anything is marked mounted: a port in use fails the mount with nothing to undo.
  const metricsServer =
    config.metricsPort === undefined ? undefined : await MetricsServer.listen(config.metricsPort, config.metricsAddress);

  const httpStats = new HttpStats(config.listBlocks);
  let objects: ObjectStore;
  try {
    objects = openObjects(config, httpStats, log);
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }
  const close = async (): Promise<void> => {
    objects.close();
    await metricsServer?.close();
  };
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
    return { mountpoint, naming, metricsServer, httpStats, objects, flag, ownCrash, geometry, codec, close };
  } catch (err) {
    await close();
    throw err;
  }
}
