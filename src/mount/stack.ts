// Builds the layer stack top-down from the configuration:
// partial-block read/modify/write -> zero cache -> block backend -> object store.

import type { ObjectStore } from '../backend/objectStore';
import { BlockBackend } from '../backend/blockBackend';
import type { HttpStats } from '../backend/httpStats';
import { ZeroCache } from '../layers/zeroCache';
import { PartialBlockLayer } from '../layers/partialBlock';
import type { BlockStore } from '../store/blockStore';
import type { StatsSource } from '../stats/stats';
import type { BlockNaming } from '../format/blockNames';

export interface Stack {
  readonly data: PartialBlockLayer;
  /** The top block store, for flush and close. */
  readonly top: BlockStore;
  readonly zeroCache: ZeroCache;
  readonly statsSources: readonly StatsSource[];
}

export interface StackOptions extends BlockNaming {
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly defaultContentEncoding?: string | undefined;
}

export function buildStack(objects: ObjectStore, options: StackOptions, httpStats: HttpStats): Stack {
  const backend = new BlockBackend(objects, options, httpStats);
  const zeroCache = new ZeroCache(backend);
  return {
    data: new PartialBlockLayer(zeroCache),
    top: zeroCache,
    zeroCache,
    statsSources: [httpStats, zeroCache],
  };
}
