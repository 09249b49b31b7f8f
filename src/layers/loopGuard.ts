// When LRU is the worst choice: a reader looping over more blocks than the cache holds (a file
// read again and again that is a little bigger than the cache, say) finds every block evicted
// just before it comes back for it, so every read misses. The guard notices this from refaults
// (fetches of blocks the cache evicted not long ago) and tells the block cache to hold most of
// what it has, so the loop's other blocks cycle through the few slots left and the held part
// hits on every pass. A fetch of blocks the cache has not seen lately (a new working set, one
// long scan) lets go again, and plain LRU takes over.

/** The share of fetches that must be refaults to hold, and below which the hold ends. */
const HOLD_AT = 0.9;
const RELEASE_BELOW = 0.5;
/** The refault share is a moving average over about this many fetches. */
const WINDOW = 16;
/** Evictions remembered: a fetch of a block evicted longer ago than this many cache sizes is no refault. */
const MEMORY_IN_CACHES = 2;

export type LoopAction = 'hold' | 'release' | undefined;

export class LoopGuard {
  /** Recently evicted blocks, in the order they went (a Map keeps insertion order). */
  private readonly ghosts = new Map<number, true>();
  private readonly memory: number;
  private refaultShare = 0;
  /** The cache holds its blocks now. */
  holding = false;
  /** How many times a hold began (for the stats file). */
  holds = 0;

  constructor(cacheSize: number) {
    this.memory = Math.max(1, cacheSize * MEMORY_IN_CACHES);
  }

  /** The cache evicted the block to make room (not for being idle). */
  evicted(block: number): void {
    this.ghosts.set(block, true);
    if (this.ghosts.size > this.memory) {
      for (const old of this.ghosts.keys()) {
        this.ghosts.delete(old);
        break;
      }
    }
  }

  /** The cache fetches the block into a slot: whether to hold or release now. */
  loaded(block: number): LoopAction {
    const refault = this.ghosts.delete(block);
    this.refaultShare += ((refault ? 1 : 0) - this.refaultShare) / WINDOW;
    if (!this.holding && this.refaultShare >= HOLD_AT) {
      this.holding = true;
      this.holds++;
      return 'hold';
    }
    if (this.holding && this.refaultShare < RELEASE_BELOW) {
      this.holding = false;
      return 'release';
    }
    return undefined;
  }
}

/**
 * Slots left cycling while the cache holds the rest: more than the read-ahead window can take
 * (16 times --readAhead at its widest) so blocks read ahead survive until read, and at least a
 * sixteenth of the cache; at most half of it.
 */
export function cyclingSlots(cacheSize: number, readAhead: number): number {
  return Math.min(Math.floor(cacheSize / 2), Math.max(Math.ceil(cacheSize / 16), 16 * Math.max(readAhead, 1) + 32));
}
