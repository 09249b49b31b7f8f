// Byte-range reads and writes over whole blocks. A write covering part of a block goes to the
// store's writeBlockPart when it has one (the block cache), else reads the block, patches it and
// writes it back; either way under that block's lock, so concurrent writers inside one block
// never lose each other's bytes. A write covering whole blocks never reads.

import type { BlockStore } from '../store/blockStore';
import { KeyedMutex } from '../util/keyedMutex';

interface Piece {
  readonly blockNum: number;
  /** Offset inside the block. */
  readonly offset: number;
  readonly length: number;
  /** Offset inside the caller's buffer. */
  readonly bufOffset: number;
}

export class PartialBlockLayer {
  private readonly locks = new KeyedMutex();
  readonly size: number;

  constructor(private readonly store: BlockStore) {
    this.size = store.blockSize * store.numBlocks;
  }

  private pieces(position: number, length: number): Piece[] {
    const { blockSize } = this.store;
    const pieces: Piece[] = [];
    for (let done = 0; done < length; ) {
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
        if (readPart && p.length < this.store.blockSize) {
          // Straight into the caller's buffer (FUSE's own): no copy in between.
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
    const { blockSize } = this.store;
    await Promise.all(
      this.pieces(position, source.length).map((p) =>
        this.locks.run(p.blockNum, async () => {
          const slice = source.subarray(p.bufOffset, p.bufOffset + p.length);
          if (p.length === blockSize) {
            await this.store.writeBlock(p.blockNum, Buffer.from(slice));
            return;
          }
          if (this.store.writeBlockPart) {
            await this.store.writeBlockPart(p.blockNum, p.offset, slice);
            return;
          }
          const block = await this.store.readBlock(p.blockNum);
          slice.copy(block, p.offset);
          await this.store.writeBlock(p.blockNum, block);
        }),
      ),
    );
    return source.length;
  }

  // TEMPORARY (replaced by the TRIM work): zeroes by writing zeros.
  async zero(position: number, length: number): Promise<void> {
    const chunk = Buffer.alloc(Math.min(length, 1 << 20));
    for (let done = 0; done < length; done += chunk.length) {
      await this.write(position + done, chunk.subarray(0, Math.min(chunk.length, length - done)));
    }
  }

  flush(): Promise<void> {
    return this.store.flush();
  }
}
