// The one interface every layer of the stack implements and stores through.

export interface BlockStore {
  readonly blockSize: number;
  readonly numBlocks: number;
  /** Resolves the whole block (blockSize bytes), owned by the caller. */
  readBlock(blockNum: number): Promise<Buffer>;
  /** Optional: copies target.length bytes at `offset` of the block into target, without the rest. */
  readBlockPart?(blockNum: number, offset: number, target: Buffer): Promise<void>;
  /**
   * Reads the block unless its stored form still has this MD5 (hex): null then. Lets a cache
   * verify reloaded blocks with a conditional request instead of a full download.
   */
  readBlockIfChanged(blockNum: number, md5Hex: string): Promise<Buffer | null>;
  /**
   * Optional: stores part of a block without the caller reading the rest first (a cache can hold
   * the part and fetch the remainder only if it is ever needed). Absent: read/modify/write.
   */
  writeBlockPart?(blockNum: number, offset: number, data: Buffer): Promise<void>;
  /** Stores a whole block; null means all zeros. The store must not keep `data` after resolving. */
  writeBlock(blockNum: number, data: Buffer | null): Promise<void>;
  /** Resolves once everything written before the call is durable in the backing store. */
  flush(): Promise<void>;
  /** Reports every block that may hold non-zero data. */
  listNonZero(onBlock: (blockNum: number) => void, options?: ListNonZeroOptions): Promise<void>;
  close(): Promise<void>;
}

export interface ListNonZeroOptions {
  /** Listers side by side over disjoint key ranges, where the store gains from it (default 1). */
  readonly threads?: number;
  /** Aborting stops the listing; the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called once every block in [first, end) that may hold data has been reported. */
  readonly onBlocksDone?: (first: number, end: number) => void;
}

/** A block could not be read or written: the FUSE front end answers EIO. */
export class BlockIOError extends Error {
  constructor(
    readonly blockNum: number,
    message: string,
  ) {
    super(`block ${blockNum}: ${message}`);
  }
}

export function checkBlockNum(store: { numBlocks: number }, blockNum: number): void {
  if (!Number.isInteger(blockNum) || blockNum < 0 || blockNum >= store.numBlocks) {
    throw new RangeError(`block number ${blockNum} is outside 0..${store.numBlocks - 1}`);
  }
}
