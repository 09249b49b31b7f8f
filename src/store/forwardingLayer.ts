// The common part of a layer in the stack: it sits on one inner store and passes on whatever it
// does not change itself.

import type { BlockStore, ETag, ListNonZeroOptions } from './blockStore';

export abstract class ForwardingLayer<Inner extends BlockStore = BlockStore> implements BlockStore {
  readonly blockSize: number;
  readonly numBlocks: number;

  constructor(protected readonly inner: Inner) {
    this.blockSize = inner.blockSize;
    this.numBlocks = inner.numBlocks;
  }

  abstract readBlock(blockNum: number): Promise<Buffer>;
  abstract writeBlock(blockNum: number, data: Buffer | null): Promise<ETag | void>;

  flush(): Promise<void> {
    return this.inner.flush();
  }

  listNonZero(onBlock: (blockNum: number) => void, options?: ListNonZeroOptions): Promise<void> {
    return this.inner.listNonZero(onBlock, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
