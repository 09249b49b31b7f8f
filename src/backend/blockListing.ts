// Lists the block objects of a disk, with listers side by side over disjoint key ranges. After
// the prefix every block key starts with 8 hex digits (the block number, or with
// --blockHashPrefix its hash), and such keys sort like the numbers they encode: the range
// [first, end) of those numbers is listed by starting after the key of first - 1 (S3's
// StartAfter) and stopping at the first key at or past the key of `end`.

import { MAX_BLOCKS, hex8, parseBlockKey, type BlockNaming } from '../format/blockNames';
import type { ObjectStore } from './objectStore';

/** Numbers [first, end) of the 8 hex digits after the prefix: block numbers, or their hashes. */
export interface KeyRange {
  readonly first: number;
  readonly end: number;
}

/** [0, span) cut into at most n ranges of (nearly) equal size, none empty, in order. */
export function splitKeySpace(span: number, n: number): KeyRange[] {
  const count = Math.max(1, Math.min(n, span));
  const ranges: KeyRange[] = [];
  for (let i = 0; i < count; i++) ranges.push({ first: Math.floor((span * i) / count), end: Math.floor((span * (i + 1)) / count) });
  return ranges;
}

export interface BlockListingOptions extends BlockNaming {
  /** Keys of blocks at or past this number are not blocks of this disk (MAX_BLOCKS: any block). */
  readonly numBlocks: number;
  /**
   * Without --blockHashPrefix: the block numbers to spread the listers over (the disk's size);
   * the last lister goes on to numBlocks. With it the listers split the 32-bit hash space.
   */
  readonly spread?: number;
  /** Listers side by side (where the store gains from it; else one plain listing). */
  readonly threads: number;
  readonly signal?: AbortSignal | undefined;
}

/** The ranges the listers take: disjoint, in order, together covering every block key. */
export function listingRanges(options: BlockListingOptions, parallel: boolean): KeyRange[] {
  if (!parallel) return [{ first: 0, end: MAX_BLOCKS }];
  if (options.blockHashPrefix) return splitKeySpace(MAX_BLOCKS, options.threads);
  const ranges = splitKeySpace(Math.min(options.spread ?? options.numBlocks, options.numBlocks), options.threads);
  const last = ranges.length - 1;
  ranges[last] = { first: ranges[last]!.first, end: options.numBlocks };
  return ranges;
}

/**
 * Calls onBlock for every block object (number and key) and onRangeDone once a range has been
 * listed to its end. The first failing range stops the others, and its error is the rejection.
 */
export async function listBlockObjects(
  objects: ObjectStore,
  options: BlockListingOptions,
  onBlock: (blockNum: number, key: string) => void,
  onRangeDone?: (range: KeyRange) => void,
): Promise<void> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  let failure: { error: unknown } | undefined;
  await Promise.all(
    listingRanges(options, objects.listsInParallel).map(async (range) => {
      try {
        await listRange(objects, options, range, signal, onBlock);
        onRangeDone?.(range);
      } catch (error) {
        if (failure) return;
        failure = { error };
        stop.abort(error);
      }
    }),
  );
  if (failure) throw failure.error;
}

async function listRange(
  objects: ObjectStore,
  options: BlockListingOptions,
  { first, end }: KeyRange,
  signal: AbortSignal,
  onBlock: (blockNum: number, key: string) => void,
): Promise<void> {
  const { prefix } = options;
  const startAfter = first === 0 ? undefined : prefix + hex8(first - 1);
  const stopAt = end >= MAX_BLOCKS ? undefined : prefix + hex8(end);
  await objects.list(
    prefix,
    (keys) => {
      for (const key of keys) {
        if (stopAt !== undefined && key >= stopAt) return false;
        const blockNum = parseBlockKey(options, key, options.numBlocks);
        if (blockNum === undefined) continue;
        // Keys that start with first - 1's digits (hash-dash-block) sort after startAfter.
        const lead = parseInt(key.slice(prefix.length, prefix.length + 8), 16);
        if (lead >= first) onBlock(blockNum, key);
      }
      return undefined;
    },
    { startAfter, signal },
  );
}
