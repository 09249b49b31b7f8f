// Byte-range reads and writes over whole blocks. A write covering part of a block goes to the
// store's writeBlockPart when it has one (the block cache), else reads the block, patches it and
// writes it back; either way under that block's lock, so concurrent writers inside one block
// never lose each other's bytes. A write covering whole blocks never reads. zero() is TRIM /
// discard: its partial edges are written as zeros by the same path, its whole blocks are trimmed
// down the stack in batches, each under all its blocks' locks.

import type { BlockStore } from '../store/blockStore';
import { TRIM_BATCH, trimThrough } from '../store/trim';
import type { StatLine, StatsSource } from '../stats/stats';
import { KeyedMutex } from '../util/keyedMutex';
import { allSettled, forEachLimited } from '../util/batches';

/** Trim batches in flight at once: a big discard keeps a few multi-object deletes going. */
const TRIM_BATCHES_AT_ONCE = 4;

interface Piece {
  readonly blockNum: number;
  /** Offset inside the block. */
  readonly offset: number;
  readonly length: number;
  /** Offset inside the caller's buffer. */
  readonly bufOffset: number;
}

export class PartialBlockLayer implements StatsSource {
  private readonly locks = new KeyedMutex();
  readonly size: number;
  private discardRequests = 0;
  private discardedBlocks = 0;

  constructor(private readonly store: BlockStore) {
    this.size = store.blockSize * store.numBlocks;
  }

  private pieces(position: number, length: number): Piece[] {
    const { blockSize } = this.store;
    const pieces: Piece[] = [];
    for (let done = 0; done < length;) {
      const pos = position + done;
      const blockNum = Math.floor(pos / blockSize);
      const offset = pos - blockNum * blockSize;
      const len = Math.min(blockSize - offset, length - done);
      pieces.push({ blockNum, offset, length: len, bufOffset: done });
      done += len;
    }
    return pieces;
  }

  /** Reads into `target` from `position`; returns the bytes read (short at end of file). */
  async read(position: number, target: Buffer): Promise<number> {
    const length = Math.max(0, Math.min(target.length, this.size - position));
    await Promise.all(
      this.pieces(position, length).map(async (p) => {
        // Reads take the lock too: one overlapping a read/modify/write sees all of it or none.
        const readPart = this.store.readBlockPart?.bind(this.store);
        if (readPart) {
          // Straight into the caller's buffer (FUSE's own), whole blocks too: no copy in between.
          await this.locks.run(p.blockNum, () => readPart(p.blockNum, p.offset, target.subarray(p.bufOffset, p.bufOffset + p.length)));
          return;
        }
        const data = await this.locks.run(p.blockNum, () => this.store.readBlock(p.blockNum));
        data.copy(target, p.bufOffset, p.offset, p.offset + p.length);
      }),
    );
    return length;
  }

  /** Writes `source` at `position`; throws RangeError past the end of the file. */
  async write(position: number, source: Buffer): Promise<number> {
    if (position + source.length > this.size) {
      throw new RangeError(`write of ${source.length} bytes at ${position} goes past the end (${this.size})`);
    }
    await Promise.all(
      this.pieces(position, source.length).map((p) =>
        this.locks.run(p.blockNum, () => this.writePiece(p.blockNum, p.offset, source.subarray(p.bufOffset, p.bufOffset + p.length))),
      ),
    );
    return source.length;
  }

  /** Stores `data` at `offset` of the block; the caller holds the block's lock. */
  private async writePiece(blockNum: number, offset: number, data: Buffer): Promise<void> {
    if (data.length === this.store.blockSize) {
      // No copy: the caller's buffer is its own until this resolves, and stores keep nothing after.
      await this.store.writeBlock(blockNum, data);
      return;
    }
    if (this.store.writeBlockPart) {
      await this.store.writeBlockPart(blockNum, offset, data);
      return;
    }
    const block = await this.store.readBlock(blockNum);
    data.copy(block, offset);
    await this.store.writeBlock(blockNum, block);
  }

  /**
   * TRIM / discard: afterwards [position, position + length) reads as zeros. Partial blocks at
   * the edges are written as zeros (as a partial write would be); the whole blocks between go
   * down as trims of up to TRIM_BATCH blocks, each holding its blocks' locks, a few at a time.
   * Throws RangeError past the end of the file, as write does.
   */
  async zero(position: number, length: number): Promise<void> {
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > this.size) {
      throw new RangeError(`zeroing ${length} bytes at ${position} goes past the end (${this.size})`);
    }
    this.discardRequests++;
    if (length === 0) return;
    const { blockSize } = this.store;
    const end = position + length;
    // Whole blocks [first, last); computed, not listed: a discard of the disk is millions of them.
    const first = Math.ceil(position / blockSize);
    const last = Math.floor(end / blockSize);
    const edges: Array<[blockNum: number, from: number, to: number]> = [];
    if (first > last)
      edges.push([last, position - last * blockSize, end - last * blockSize]); // inside one block
    else {
      if (position < first * blockSize) edges.push([first - 1, position - (first - 1) * blockSize, blockSize]);
      if (end > last * blockSize) edges.push([last, 0, end - last * blockSize]);
    }
    const whole = Math.max(0, last - first);
    this.discardedBlocks += whole;
    // Settled, all of it, before answering: a failed edge must not leave trims running unseen.
    await allSettled([
      ...edges.map(([blockNum, from, to]) => this.locks.run(blockNum, () => this.writePiece(blockNum, from, Buffer.alloc(to - from)))),
      forEachLimited(Math.ceil(whole / TRIM_BATCH), TRIM_BATCHES_AT_ONCE, (batch) => {
        const start = first + batch * TRIM_BATCH;
        const blockNums = Array.from({ length: Math.min(TRIM_BATCH, last - start) }, (_, i) => start + i);
        return this.locks.runAll(blockNums, () => trimThrough(this.store, blockNums));
      }),
    ]);
  }

  flush(): Promise<void> {
    return this.store.flush();
  }

  statsLines(): readonly StatLine[] {
    return [];
  }

  extraStatsLines(): readonly StatLine[] {
    // TRIM / discard (fallocate PUNCH_HOLE or ZERO_RANGE): the calls, and whole blocks they dropped.
    return [
      ['discard_requests', this.discardRequests],
      ['discarded_blocks', this.discardedBlocks],
    ];
  }

  resetStats(): void {
    this.discardRequests = this.discardedBlocks = 0;
  }
}
