// Upstream's read-ahead rule, made adaptive: after --readAheadTrigger sequential block reads, the
// blocks after the one read are fetched ahead of the reader, --readAhead of them, and the window
// doubles while the reader stays sequential (up to 16x), so a store with a high first-byte
// latency keeps enough fetches in flight. Pure policy: which blocks to want, not how to get them
// (the block cache skips what it holds and stops when no slot is free).

export interface ReadAheadOptions {
  /** --readAhead: blocks ahead of a sequential reader; 0 = off. */
  readonly readAhead: number;
  /** --readAheadTrigger: sequential block reads before read-ahead starts. */
  readonly readAheadTrigger: number;
  /** Slots of the cache: the window never takes more than a quarter of them. */
  readonly size: number;
  readonly numBlocks: number;
}

/** Doublings of the window at most: 16x --readAhead. */
const MAX_GROWTH = 4;

export class ReadAhead {
  private lastRead = -2;
  private sequential = 0;

  constructor(private readonly options: ReadAheadOptions) {}

  /**
   * A read of `blockNum`: the blocks to have fetched next, nearest first (empty when the reader
   * is not sequential enough yet, or read-ahead is off). Reads within one block are one step.
   */
  onRead(blockNum: number): number[] {
    if (blockNum === this.lastRead) return [];
    this.sequential = blockNum === this.lastRead + 1 ? this.sequential + 1 : 1;
    this.lastRead = blockNum;
    const { readAhead, readAheadTrigger, size, numBlocks } = this.options;
    if (readAhead <= 0 || this.sequential < readAheadTrigger) return [];
    const growth = Math.min(this.sequential - readAheadTrigger, MAX_GROWTH);
    const window = Math.max(Math.min(readAhead * 2 ** growth, Math.floor(size / 4)), readAhead);
    const end = Math.min(blockNum + 1 + window, numBlocks);
    const wanted: number[] = [];
    for (let b = blockNum + 1; b < end; b++) wanted.push(b);
    return wanted;
  }
}
