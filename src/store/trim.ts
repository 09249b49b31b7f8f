// Passing a TRIM (discard) of whole blocks down to a store, with or without its own trimBlocks.

import type { BlockStore } from './blockStore';
import { forEachLimited } from '../util/batches';

/** Blocks per trim call down the stack: one multi-object delete at the bottom (S3's limit). */
export const TRIM_BATCH = 1000;

/** Zero writes in flight at once for a store that has no trimBlocks. */
const ZERO_WRITES_AT_ONCE = 16;

/** `store.trimBlocks(blockNums)`, or a zero write of each block where the store has no bulk way. */
export function trimThrough(store: BlockStore, blockNums: readonly number[]): Promise<void> {
  if (blockNums.length === 0) return Promise.resolve();
  if (store.trimBlocks) return store.trimBlocks(blockNums);
  return forEachLimited(blockNums.length, ZERO_WRITES_AT_ONCE, async (i) => {
    await store.writeBlock(blockNums[i]!, null);
  });
}
