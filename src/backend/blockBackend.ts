// The bottom of the stack: block N is object <prefix>[hash-]%08x. All-zero blocks are never
// stored (writing one deletes the object; a missing object reads as zeros), every PUT carries
// Content-MD5, and block 0 carries the geometry so later mounts can auto-detect it.

import {
  BlockIOError,
  checkBlockNum,
  ZERO_ETAG,
  type ETag,
  type ListNonZeroOptions,
  type TaggedBlock,
  type TaggedBlockStore,
} from '../store/blockStore';
import { blockKey, type BlockNaming } from '../format/blockNames';
import { listBlockObjects } from './blockListing';
import { BLOCK_CONTENT_TYPE, geometryMetadata } from '../format/blockMeta';
import type { ObjectStore, StoredObject } from './objectStore';
import type { HttpStats } from './httpStats';
import { md5Hex, type BlockCodec } from '../native/addon';
import { blockDigest } from './blockDigests';

export const META_HMAC = 's3backer-hmac';

export interface BlockBackendOptions extends BlockNaming {
  readonly blockSize: number;
  readonly numBlocks: number;
  /** Compresses and/or encrypts on write; decodes whatever encoding a stored block carries. */
  readonly codec: BlockCodec;
  /** Whether writes go through the codec (else stored as is, the fast path). */
  readonly encodeWrites: boolean;
  /** Assumed for stored blocks that carry no Content-Encoding (stores that drop the header). */
  readonly defaultContentEncoding?: string | undefined;
}

/** An ETag header as 32 lowercase hex digits, or undefined when it is not an MD5's form (a multipart upload's, say). */
function normalETag(header: string | undefined): ETag | undefined {
  const m = header === undefined ? null : /^\s*(?:W\/)?"?([0-9a-fA-F]{32})"?\s*$/.exec(header);
  return m ? m[1]!.toLowerCase() : undefined;
}

/** What the store says the object's ETag is; the body's MD5 when it says nothing usable (as S3 would). */
function etagOf(obj: StoredObject | null): ETag {
  return obj === null ? ZERO_ETAG : (normalETag(obj.etag) ?? md5Hex(obj.body));
}

export class BlockBackend implements TaggedBlockStore {
  readonly blockSize: number;
  readonly numBlocks: number;
  private readonly block0Metadata: Record<string, string>;
  /**
   * The longest answer a block read takes (compression that grows and cipher padding add far
   * less). A longer one is refused at its header, not buffered: a hostile or broken endpoint
   * could otherwise make every read hold up to the store's 256 MiB limit.
   */
  private readonly maxObjectBytes: number;

  constructor(
    private readonly objects: ObjectStore,
    private readonly options: BlockBackendOptions,
    private readonly stats: HttpStats,
  ) {
    this.blockSize = options.blockSize;
    this.numBlocks = options.numBlocks;
    this.maxObjectBytes = options.blockSize + Math.ceil(options.blockSize / 16) + 4096;
    this.block0Metadata = geometryMetadata({ blockSize: options.blockSize, fileSize: options.blockSize * options.numBlocks });
  }

  async readBlock(blockNum: number): Promise<Buffer> {
    return (await this.readBlockTagged(blockNum)).data;
  }

  async readBlockTagged(blockNum: number, into?: Buffer): Promise<TaggedBlock> {
    checkBlockNum(this, blockNum);
    const obj = await this.objects.get(blockKey(this.options, blockNum), this.maxObjectBytes, into);
    return { data: await this.decode(blockNum, obj, into), etag: etagOf(obj) };
  }

  async readBlockIfChanged(blockNum: number, etag: ETag): Promise<TaggedBlock | null> {
    checkBlockNum(this, blockNum);
    const key = blockKey(this.options, blockNum);
    // Expecting an absent block: a plain GET, whose 404 says it still is (as upstream asks).
    const obj =
      etag === ZERO_ETAG
        ? await this.objects.get(key, this.maxObjectBytes)
        : await this.objects.getIfChanged(key, etag, this.maxObjectBytes);
    if (obj === 'unchanged') {
      this.stats.verified++;
      return null;
    }
    if (obj === null && etag === ZERO_ETAG) return null;
    return { data: await this.decode(blockNum, obj), etag: etagOf(obj) };
  }

  async storesAs(blockNum: number, data: Buffer, etag: ETag): Promise<boolean> {
    const plain = await blockDigest(data); // null: all zeros, never stored
    if (plain === null) return etag === ZERO_ETAG;
    if (plain.toString('hex') === etag) return true;
    // Our encodings are deterministic (the IV comes from the block number): the same data
    // encodes to the same body. Another program's compressor may differ: then this says no.
    if (!this.options.encodeWrites) return false;
    const encoded = await this.options.codec.encode(blockNum, data);
    return encoded !== null && encoded.md5.toString('hex') === etag;
  }

  /** `into`: where an absent block's zeros may go (the caller's buffer, a cache slot) instead of a new buffer. */
  private async decode(blockNum: number, obj: StoredObject | null, into?: Buffer): Promise<Buffer> {
    if (obj === null) {
      this.stats.zeroBlocksRead++;
      return into?.length === this.blockSize ? into.fill(0) : Buffer.alloc(this.blockSize);
    }
    const encoding = obj.contentEncoding ?? this.options.defaultContentEncoding ?? '';
    let data = obj.body;
    if (encoding !== '' || this.options.codec.encrypted) {
      try {
        data = await this.options.codec.decode(blockNum, obj.body, encoding, obj.metadata[META_HMAC]);
      } catch (err) {
        this.stats.mismatch++; // failed authentication or decoding: counted, and EIO above
        throw new BlockIOError(blockNum, (err as Error).message.replace(/^block \d+: /, ''));
      }
    } else if (data.length !== this.blockSize) {
      throw new BlockIOError(blockNum, `stored object has ${data.length} bytes, expected ${this.blockSize}`);
    }
    this.stats.normalBlocksRead++;
    return data;
  }

  async writeBlock(blockNum: number, data: Buffer | null): Promise<ETag> {
    checkBlockNum(this, blockNum);
    if (data !== null && data.length !== this.blockSize) {
      throw new RangeError(`block ${blockNum}: write of ${data.length} bytes, expected ${this.blockSize}`);
    }
    const key = blockKey(this.options, blockNum);
    let body = data;
    let digest: Buffer | null = null;
    let contentEncoding: string | undefined;
    let hmac: string | undefined;
    if (data !== null && this.options.encodeWrites) {
      const encoded = await this.options.codec.encode(blockNum, data);
      if (encoded !== null) ({ body, md5: digest, hmac } = encoded);
      contentEncoding = encoded?.contentEncoding || undefined;
    } else if (data !== null) digest = await blockDigest(data);
    if (body === null || digest === null) {
      await this.objects.delete(key);
      this.stats.zeroBlocksWritten++;
      return ZERO_ETAG;
    }
    const metadata = {
      ...(blockNum === 0 ? this.block0Metadata : {}),
      // Upstream quotes the HMAC inside the header value.
      ...(hmac !== undefined ? { [META_HMAC]: `"${hmac}"` } : {}),
    };
    const answered = await this.objects.put(key, body, {
      contentType: BLOCK_CONTENT_TYPE,
      contentMD5: digest.toString('base64'),
      contentEncoding,
      metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
    });
    this.stats.normalBlocksWritten++;
    return normalETag(answered.etag) ?? digest.toString('hex');
  }

  /** Deletes the blocks' objects, up to 1000 a request where the store can (S3's multi-object delete). */
  async trimBlocks(blockNums: readonly number[]): Promise<void> {
    for (const n of blockNums) checkBlockNum(this, n);
    await this.objects.deleteMany(blockNums.map((n) => blockKey(this.options, n)));
  }

  async flush(): Promise<void> {
    // Every write above has completed its request before resolving: nothing is pending here.
  }

  async listNonZero(onBlock: (blockNum: number) => void, options: ListNonZeroOptions = {}): Promise<void> {
    const { blockHashPrefix } = this.options;
    await listBlockObjects(
      this.objects,
      { ...this.options, threads: options.threads ?? 1, signal: options.signal },
      (blockNum) => onBlock(blockNum),
      // A range of hashes is blocks all over the disk: those are known only once all are listed.
      blockHashPrefix ? undefined : (range) => options.onBlocksDone?.(range.first, Math.min(range.end, this.numBlocks)),
    );
    if (blockHashPrefix) options.onBlocksDone?.(0, this.numBlocks);
  }

  close(): Promise<void> {
    this.objects.close();
    return Promise.resolve();
  }
}
