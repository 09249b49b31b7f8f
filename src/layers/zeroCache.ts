// Remembers which blocks are known to be all zeros, so reading them costs no request and
// writing zeros over them sends no DELETE. With --listBlocks a listing runs while the mount is
// served: each stretch of blocks it has listed to the end becomes known (all zero but the ones
// it found), so writes into new blocks never read first. What happens meanwhile wins over the
// listing, which may have passed a block before a write gave it data: every block written (or
// read with data) while the listing runs is left out of what it teaches. A trim of blocks known
// to be zero costs nothing (mkfs discarding a fresh disk sends no request).

import { checkBlockNum, type BlockStore } from '../store/blockStore';
import { ForwardingLayer } from '../store/forwardingLayer';
import { trimThrough } from '../store/trim';
import { blocks, type StatLine, type StatsSource } from '../stats/stats';
import { isZeroBlock } from '../native/addon';
import type { ProgressCallback } from '../util/progress';
import { BlockSet, ZeroBlocks } from './zeroBlocks';

export class ZeroCache extends ForwardingLayer implements StatsSource {
  private readHits = 0;
  private writeHits = 0;
  /** Bumped by every write: a read that overlapped a write must not mark its block zero. */
  private writeGeneration = 0;
  /** The listing running now, if any. */
  private listing: Listing | undefined;
  /** How the last listing went; undefined = none was started (no stats line then). */
  private listingState: ListingState | undefined;

  /** `zeros`: what is known, shared read-only with the layers below (see zeroBlocks.ts). */
  constructor(
    inner: BlockStore,
    private readonly zeros: ZeroBlocks = new ZeroBlocks(inner.numBlocks),
  ) {
    super(inner);
    const readPart = inner.readBlockPart?.bind(inner);
    if (readPart) {
      this.readBlockPart = async (blockNum, offset, target) => {
        checkBlockNum(this, blockNum);
        if (this.isKnownZero(blockNum)) {
          this.readHits++;
          target.fill(0);
          return;
        }
        if (offset !== 0 || target.length !== this.blockSize) return readPart(blockNum, offset, target);
        // A whole block, read into the caller's buffer: learnt from as readBlock learns.
        const generation = this.writeGeneration;
        await readPart(blockNum, 0, target);
        this.learn(blockNum, target, generation);
      };
    }
    const part = inner.writeBlockPart?.bind(inner);
    if (part) {
      this.writeBlockPart = async (blockNum, offset, data) => {
        checkBlockNum(this, blockNum);
        if (this.isKnownZero(blockNum)) {
          // The rest is known to be zeros: hand down the whole block, nothing to fetch later.
          const block = Buffer.alloc(this.blockSize);
          data.copy(block, offset);
          return this.writeBlock(blockNum, block);
        }
        // A partial write may leave the block all zeros, but that is rare: just forget "zero".
        this.writeGeneration++;
        this.listing?.touched.set(blockNum);
        this.mark(blockNum, false);
        await part(blockNum, offset, data);
      };
    }
  }

  /** Whether block `n` is known to be all zeros (reading it through this layer costs nothing). */
  isKnownZero(n: number): boolean {
    return this.zeros.isKnownZero(n);
  }

  private mark(n: number, zero: boolean): void {
    this.zeros.mark(n, zero);
  }

  /**
   * Lists the store (with `threads` listers where it gains from that) while reads and writes go
   * on, and resolves with the number of blocks found. Every stretch of blocks listed to its end
   * teaches its zeros at once; a listing that fails or is stopped rejects, and what it had not
   * finished teaches nothing.
   */
  async learnFromListing(options: LearnOptions = {}): Promise<number> {
    if (this.listing) throw new Error('a listing is already running');
    const listing: Listing = { found: new BlockSet(this.numBlocks), touched: new BlockSet(this.numBlocks), count: 0 };
    this.listing = listing;
    this.listingState = 'running';
    try {
      await this.inner.listNonZero(
        (n) => {
          if (listing.found.has(n)) return;
          listing.found.set(n);
          listing.count++;
          options.onProgress?.(listing.count);
        },
        { threads: options.threads, signal: options.signal, onBlocksDone: (first, end) => this.learnZeros(listing, first, end) },
      );
      this.listingState = 'done';
      return listing.count;
    } catch (err) {
      this.listingState = options.signal?.aborted ? 'stopped' : 'failed';
      throw err;
    } finally {
      this.listing = undefined;
    }
  }

  /** Marks zero every block of [first, end) the listing did not find and nothing touched since it began. */
  private learnZeros(listing: Listing, first: number, end: number): void {
    this.zeros.learn(first, end, listing.found, listing.touched);
  }

  async readBlock(blockNum: number): Promise<Buffer> {
    checkBlockNum(this, blockNum);
    if (this.isKnownZero(blockNum)) {
      this.readHits++;
      return Buffer.alloc(this.blockSize);
    }
    const generation = this.writeGeneration;
    const data = await this.inner.readBlock(blockNum);
    this.learn(blockNum, data, generation);
    return data;
  }

  /** A whole block read: zero blocks are never stored, so all-zero data means the object is absent. */
  private learn(blockNum: number, data: Buffer, generation: number): void {
    if (!isZeroBlock(data)) this.listing?.touched.set(blockNum);
    else if (generation === this.writeGeneration) this.mark(blockNum, true);
  }

  /** Present only when the layer below has it (so the partial layer knows to use it). */
  readonly writeBlockPart?: (blockNum: number, offset: number, data: Buffer) => Promise<void>;
  readonly readBlockPart?: (blockNum: number, offset: number, target: Buffer) => Promise<void>;

  async writeBlock(blockNum: number, data: Buffer | null): Promise<void> {
    checkBlockNum(this, blockNum);
    const zero = data === null || isZeroBlock(data);
    if (zero && this.isKnownZero(blockNum)) {
      this.writeHits++;
      return;
    }
    // Forget first: a failed or concurrent write must not leave a stale "zero" behind, and a
    // listing running now must not teach "zero" from a look at the store before this write.
    this.writeGeneration++;
    this.listing?.touched.set(blockNum);
    this.mark(blockNum, false);
    await this.inner.writeBlock(blockNum, zero ? null : data);
    if (zero) this.mark(blockNum, true);
  }

  /** Written beside this layer: no longer known to be zero, nor to be learned as zero by a listing or an overlapping read. */
  noteWritten(blockNums: ArrayLike<number>): void {
    this.writeGeneration++;
    for (let i = 0; i < blockNums.length; i++) {
      const n = blockNums[i]!;
      this.listing?.touched.set(n);
      this.mark(n, false);
    }
    this.inner.noteWritten?.(blockNums);
  }

  /** Known zeros are skipped (counted as write hits, as upstream's bulk zero counts them); the rest go down, then are known. */
  async trimBlocks(blockNums: readonly number[]): Promise<void> {
    for (const n of blockNums) checkBlockNum(this, n);
    const rest = blockNums.filter((n) => !this.isKnownZero(n));
    this.writeHits += blockNums.length - rest.length;
    if (rest.length === 0) return;
    // As a write: a read or a listing overlapping the trim must not teach anything about these blocks.
    this.writeGeneration++;
    for (const n of rest) this.listing?.touched.set(n);
    await trimThrough(this.inner, rest);
    for (const n of rest) this.mark(n, true);
  }

  statsLines(): readonly StatLine[] {
    return [
      ['zero_block_cache_size', blocks(this.zeros.count)],
      ['zero_block_cache_read_hits', this.readHits],
      ['zero_block_cache_write_hits', this.writeHits],
    ];
  }

  extraStatsLines(): readonly StatLine[] {
    // Whether the --listBlocks listing is running, done, failed or stopped.
    return this.listingState === undefined ? [] : [['zero_block_cache_listing', this.listingState]];
  }

  resetStats(): void {
    this.readHits = 0;
    this.writeHits = 0;
  }
}

export type ListingState = 'running' | 'done' | 'failed' | 'stopped';

export interface LearnOptions {
  readonly threads?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressCallback;
}

interface Listing {
  /** Blocks the listing reported. */
  readonly found: BlockSet;
  /** Blocks written, or read with data, since the listing began. */
  readonly touched: BlockSet;
  count: number;
}
