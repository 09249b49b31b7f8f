// The bottom of the stack: block N is object <prefix>[hash-]%08x. All-zero blocks are never
// stored (writing one deletes the object; a missing object reads as zeros), every PUT carries
// Content-MD5, and block 0 carries the geometry so later mounts can auto-detect it.

import { BlockIOError, checkBlockNum, type BlockStore } from '../store/blockStore';
import { blockKey, parseBlockKey, type BlockNaming } from '../format/blockNames';
import { BLOCK_CONTENT_TYPE, geometryMetadata } from '../format/blockMeta';
import type { ObjectStore, StoredObject } from './objectStore';
import type { HttpStats } from './httpStats';
import { blockDigestAsync } from '../native/addon';

export interface BlockBackendOptions extends BlockNaming {
  readonly blockSize: number;
  readonly numBlocks: number;
  /** Assumed for stored blocks that carry no Content-Encoding (stores that drop the header). */
  readonly defaultContentEncoding?: string | undefined;
}

export class BlockBackend implements BlockStore {
  readonly blockSize: number;
  readonly numBlocks: number;
  private readonly block0Metadata: Record<string, string>;

  constructor(
    private readonly objects: ObjectStore,
    private readonly options: BlockBackendOptions,
    private readonly stats: HttpStats,
  ) {
    this.blockSize = options.blockSize;
    this.numBlocks = options.numBlocks;
    this.block0Metadata = geometryMetadata({ blockSize: options.blockSize, fileSize: options.blockSize * options.numBlocks });
  }

  async readBlock(blockNum: number): Promise<Buffer> {
    checkBlockNum(this, blockNum);
    return this.decode(blockNum, await this.objects.get(blockKey(this.options, blockNum)));
  }

  async readBlockIfChanged(blockNum: number, md5Hex: string): Promise<Buffer | null> {
    checkBlockNum(this, blockNum);
    const obj = await this.objects.getIfChanged(blockKey(this.options, blockNum), md5Hex);
    if (obj === 'unchanged') {
      this.stats.verified++;
      return null;
    }
    return this.decode(blockNum, obj);
  }

  private decode(blockNum: number, obj: StoredObject | null): Buffer {
    if (obj === null) {
      this.stats.zeroBlocksRead++;
      return Buffer.alloc(this.blockSize);
    }
    const encoding = obj.contentEncoding ?? this.options.defaultContentEncoding;
    if (encoding !== undefined && encoding !== '') {
      throw new BlockIOError(blockNum, `stored with Content-Encoding "${encoding}", which this version cannot decode`);
    }
    if (obj.body.length !== this.blockSize) {
      throw new BlockIOError(blockNum, `stored object has ${obj.body.length} bytes, expected ${this.blockSize}`);
    }
    this.stats.normalBlocksRead++;
    return obj.body;
  }

  async writeBlock(blockNum: number, data: Buffer | null): Promise<void> {
    checkBlockNum(this, blockNum);
    if (data !== null && data.length !== this.blockSize) {
      throw new RangeError(`block ${blockNum}: write of ${data.length} bytes, expected ${this.blockSize}`);
    }
    const key = blockKey(this.options, blockNum);
    const digest = data === null ? null : await blockDigestAsync(data);
    if (data === null || digest === null) {
      await this.objects.delete(key);
      this.stats.zeroBlocksWritten++;
      return;
    }
    await this.objects.put(key, data, {
      contentType: BLOCK_CONTENT_TYPE,
      contentMD5: digest.toString('base64'),
      metadata: blockNum === 0 ? this.block0Metadata : undefined,
    });
    this.stats.normalBlocksWritten++;
  }

  async flush(): Promise<void> {
    // Every write above has completed its request before resolving: nothing is pending here.
  }

  async listNonZero(onBlock: (blockNum: number) => void): Promise<void> {
    await this.objects.list(this.options.prefix, (keys) => {
      for (const key of keys) {
        const blockNum = parseBlockKey(this.options, key, this.numBlocks);
        if (blockNum !== undefined) onBlock(blockNum);
      }
    });
  }

  async close(): Promise<void> {
    this.objects.close();
  }
}
