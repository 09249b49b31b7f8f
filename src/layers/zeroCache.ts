// Remembers which blocks are known to be all zeros, so reading them costs no request and
// writing zeros over them sends no DELETE. With --listBlocks it starts knowing every block:
// all are zero but the ones the listing found, so writes into new blocks never read first.

import { checkBlockNum, type BlockStore } from '../store/blockStore';
import { ForwardingLayer } from '../store/forwardingLayer';
import { blocks, type StatLine, type StatsSource } from '../stats/stats';
import { isZeroBlock } from '../native/addon';
import type { ProgressCallback } from '../util/progress';

export class ZeroCache extends ForwardingLayer implements StatsSource {
  /** One bit per block: set = known all-zero. */
  private readonly zeroBits: Uint8Array;
  private knownZero = 0;
  private readHits = 0;
  private writeHits = 0;
  /** Bumped by every write: a read that overlapped a write must not mark its block zero. */
  private writeGeneration = 0;

  constructor(inner: BlockStore) {
    super(inner);
    this.zeroBits = new Uint8Array(Math.ceil(inner.numBlocks / 8));
    const readPart = inner.readBlockPart?.bind(inner);
    if (readPart) {
      this.readBlockPart = async (blockNum, offset, target) => {
        checkBlockNum(this, blockNum);
        if (this.isKnownZero(blockNum)) {
          this.readHits++;
          target.fill(0);
          return;
        }
        return readPart(blockNum, offset, target);
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
        this.mark(blockNum, false);
        await part(blockNum, offset, data);
      };
    }
  }

  /** Whether block `n` is known to be all zeros (reading it through this layer costs nothing). */
  isKnownZero(n: number): boolean {
    return ((this.zeroBits[n >>> 3] ?? 0) & (1 << (n & 7))) !== 0;
  }

  private mark(n: number, zero: boolean): void {
    if (this.isKnownZero(n) === zero) return;
    this.zeroBits[n >>> 3]! ^= 1 << (n & 7);
    this.knownZero += zero ? 1 : -1;
  }

  /** Lists the store once: afterwards every block not found is known to be zero. */
  async learnFromListing(onProgress?: ProgressCallback): Promise<number> {
    const present = new Uint8Array(this.zeroBits.length);
    let found = 0;
    await this.inner.listNonZero((n) => {
      present[n >>> 3]! |= 1 << (n & 7);
      found++;
      onProgress?.(found);
    });
    this.zeroBits.set(present.map((byte) => ~byte & 0xff));
    // Clear the padding bits past the last block so the count is exact.
    const tail = this.numBlocks & 7;
    if (tail !== 0) this.zeroBits[this.zeroBits.length - 1]! &= (1 << tail) - 1;
    this.knownZero = this.numBlocks - found;
    return found;
  }

  async readBlock(blockNum: number): Promise<Buffer> {
    checkBlockNum(this, blockNum);
    if (this.isKnownZero(blockNum)) {
      this.readHits++;
      return Buffer.alloc(this.blockSize);
    }
    const generation = this.writeGeneration;
    const data = await this.inner.readBlock(blockNum);
    // Zero blocks are never stored, so all-zero data means the object is absent.
    if (generation === this.writeGeneration && isZeroBlock(data)) this.mark(blockNum, true);
    return data;
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
    // Forget first: a failed or concurrent write must not leave a stale "zero" behind.
    this.writeGeneration++;
    this.mark(blockNum, false);
    await this.inner.writeBlock(blockNum, zero ? null : data);
    if (zero) this.mark(blockNum, true);
  }

  statsLines(): readonly StatLine[] {
    return [
      ['zero_block_cache_size', blocks(this.knownZero)],
      ['zero_block_cache_read_hits', this.readHits],
      ['zero_block_cache_write_hits', this.writeHits],
    ];
  }

  resetStats(): void {
    this.readHits = 0;
    this.writeHits = 0;
  }
}
