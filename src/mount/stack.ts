// Builds the layer stack top-down from the configuration:
// partial-block read/modify/write -> zero cache -> block cache -> eventual-consistency guard ->
// block backend (codec inside) -> object store.

import type { ObjectStore } from '../backend/objectStore';
import { BlockBackend } from '../backend/blockBackend';
import type { HttpStats } from '../backend/httpStats';
import { ZeroCache } from '../layers/zeroCache';
import { ZeroBlocks } from '../layers/zeroBlocks';
import { BlockCache, WRITE_BACK_TRIM_BLOCKS } from '../layers/blockCache';
import { EcProtect, type EcProtectOptions } from '../layers/ecProtect';
import type { RetryPolicy } from '../util/retryPauses';
import { BlockMaps, SlotStores, type BlockCodec, type BlockMap, type SlotStore } from '../native/addon';
import type { BlockCacheConfig } from '../config/config';
import type { Logger } from '../util/log';
import { PartialBlockLayer } from '../layers/partialBlock';
import type { BlockStore, TaggedBlockStore } from '../store/blockStore';
import type { StatsSource } from '../stats/stats';
import type { BlockNaming } from '../format/blockNames';

export interface Stack {
  readonly data: PartialBlockLayer;
  /** The top block store, for flush and close. */
  readonly top: BlockStore;
  /** Undefined in shared disk mode: another host may fill a block this one knows as zero. */
  readonly zeroCache: ZeroCache | undefined;
  readonly blockCache: BlockCache | undefined;
  /** The cache's blocks and slots, for the FUSE session to read and write without asking JS. */
  readonly blockMap: BlockMap | undefined;
  readonly statsSources: readonly StatsSource[];
}

/** More slots than blocks would never be used. */
export function cacheSlots(cacheSize: number, numBlocks: number): number {
  return Math.min(cacheSize, numBlocks);
}

export interface StackOptions extends BlockNaming {
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly defaultContentEncoding?: string | undefined;
  readonly blockCache: BlockCacheConfig;
  readonly codec: BlockCodec;
  readonly encodeWrites: boolean;
  readonly ecProtect: (EcProtectOptions & RetryPolicy) | undefined;
  /** --sharedDiskMode: nothing is remembered about blocks (the config already turned the other caches off). */
  readonly sharedDisk?: boolean;
  /** Trims of up to this many blocks the block cache writes back as zeros (WRITE_BACK_TRIM_BLOCKS; 0: none). */
  readonly writeBackTrims?: number;
}

/** `cacheFile`: the slots of an opened --blockCacheFile; otherwise they live in anonymous memory. */
export function buildStack(objects: ObjectStore, options: StackOptions, httpStats: HttpStats, log: Logger, cacheFile?: SlotStore): Stack {
  const backend = new BlockBackend(objects, options, httpStats);
  const guard = options.ecProtect ? new EcProtect(backend, options.ecProtect, log) : undefined;
  const belowCache: TaggedBlockStore = guard ?? backend;
  const cacheConfig = options.blockCache;
  const slots = cacheSlots(cacheConfig.size, options.numBlocks);
  // What the zero cache above learns, the block cache's read-ahead below reads: made here, handed down.
  const zeroBlocks = options.sharedDisk ? undefined : new ZeroBlocks(options.numBlocks);
  const slotStore = slots > 0 ? (cacheFile ?? SlotStores.anonymous(options.blockSize, slots)) : undefined;
  const blockMap = slotStore && new BlockMaps(slotStore);
  const blockCache =
    slotStore !== undefined
      ? new BlockCache(
          belowCache,
          slotStore,
          {
            ...cacheConfig,
            size: slots,
            maxDirty: Math.min(cacheConfig.maxDirty, slots),
            persistent: cacheFile !== undefined,
            knownZero: zeroBlocks,
            map: blockMap,
            session: true,
            writeBackTrims: options.writeBackTrims ?? WRITE_BACK_TRIM_BLOCKS,
          },
          log,
        )
      : undefined;
  const cached: BlockStore = blockCache ?? belowCache;
  const zeroCache = zeroBlocks && new ZeroCache(cached, zeroBlocks);
  const top = zeroCache ?? cached;
  const data = new PartialBlockLayer(top);
  return {
    data,
    top,
    zeroCache,
    blockCache,
    blockMap,
    // The data layer has only lines of ours (discards): last, after upstream's layers.
    statsSources: [httpStats, ...(blockCache ? [blockCache] : []), ...(zeroCache ? [zeroCache] : []), ...(guard ? [guard] : []), data],
  };
}
