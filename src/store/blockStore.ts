// The one interface every layer of the stack implements and stores through.

export interface BlockStore {
  readonly blockSize: number;
  readonly numBlocks: number;
  /** Resolves the whole block (blockSize bytes), owned by the caller. */
  readBlock(blockNum: number): Promise<Buffer>;
  /** Optional: copies target.length bytes at `offset` of the block into target, without the rest. */
  readBlockPart?(blockNum: number, offset: number, target: Buffer): Promise<void>;
  /**
   * Optional: stores part of a block without the caller reading the rest first (a cache can hold
   * the part and fetch the remainder only if it is ever needed). Absent: read/modify/write.
   */
  writeBlockPart?(blockNum: number, offset: number, data: Buffer): Promise<void>;
  /**
   * Stores a whole block; null means all zeros. The store must not keep `data` after resolving.
   * Resolves with the stored object's ETag where the store knows it (see TaggedBlockStore).
   */
  writeBlock(blockNum: number, data: Buffer | null): Promise<ETag | void>;
  /**
   * Optional: these blocks (distinct, ascending) are all zeros from now on, a TRIM or discard.
   * A store with it drops them in bulk (a cache its copies, the backend their objects, up to
   * 1000 per request); resolved, each reads as zeros. Absent: writeBlock(n, null) for each (see
   * trimThrough). Callers hold the blocks' locks, so no write of them runs meanwhile.
   */
  trimBlocks?(blockNums: readonly number[]): Promise<void>;
  /**
   * Optional: these blocks were written beside the layers above the cache (by the FUSE session,
   * straight into the block cache's slots, which now hold them dirty). Each layer forgets what it
   * knew of their contents and passes them on; the cache schedules their uploads. Called in the
   * order of the requests, before any later request reaches the stack.
   */
  noteWritten?(blockNums: ArrayLike<number>): void;
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

/**
 * The ETag of a block's stored object, 32 lowercase hex digits (the MD5 of the PUT body, after
 * compression and encryption); ZERO_ETAG for a block that is absent, i.e. all zeros. Cache files
 * keep it per clean slot, as upstream's do, so either program can verify the other's slots.
 */
export type ETag = string;
export const ZERO_ETAG: ETag = '0'.repeat(32);

export interface TaggedBlock {
  readonly data: Buffer;
  readonly etag: ETag;
}

/** What the block cache needs from the layer below it: the ETag of what is stored. */
export interface TaggedBlockStore extends BlockStore {
  writeBlock(blockNum: number, data: Buffer | null): Promise<ETag>;
  /**
   * `into` (one block long) is a buffer the caller would copy the data out of and then reuse: a
   * layer may return it, filled, as the data, instead of allocating one per block.
   */
  readBlockTagged(blockNum: number, into?: Buffer): Promise<TaggedBlock>;
  /**
   * Reads the block unless its stored object still has this ETag (ZERO_ETAG: is still absent):
   * null then. Verifies a reloaded slot with a conditional request instead of a download.
   */
  readBlockIfChanged(blockNum: number, etag: ETag): Promise<TaggedBlock | null>;
  /**
   * Whether this data, stored as this block, would have this ETag (encoded as this disk encodes,
   * or stored plain): the local check that a reloaded slot still holds what its entry claims.
   */
  storesAs(blockNum: number, data: Buffer, etag: ETag): Promise<boolean>;
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
