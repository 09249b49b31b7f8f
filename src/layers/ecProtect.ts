// The eventual-consistency guard (--md5CacheSize, --md5CacheTime, --minWriteDelay), for
// S3-compatible stores that may answer a read with an older version of a block (S3 itself is
// strongly consistent since 2020, so this is off by default). After a write it remembers the
// block's MD5 for a while; reads of remembered blocks must return that data, and anything else
// is stale: retried with upstream's pauses, then an I/O error. Writes of the same block are
// spaced at least --minWriteDelay apart.

import { BlockIOError, checkBlockNum, type ETag, type TaggedBlock, type TaggedBlockStore } from '../store/blockStore';
import { ForwardingLayer } from '../store/forwardingLayer';
import { trimThrough } from '../store/trim';
import { blocks, totalSeconds, type StatLine, type StatsSource } from '../stats/stats';
import { md5 } from '../native/addon';
import { retryPauses, type RetryPolicy } from '../util/retryPauses';
import type { Logger } from '../util/log';

export interface EcProtectOptions extends RetryPolicy {
  /** Blocks remembered at once; writers wait while it is full. */
  readonly cacheSize: number;
  /** How long a written block's MD5 is remembered (0 = until evicted by size). */
  readonly cacheTimeMs: number;
  readonly minWriteDelayMs: number;
}

interface Remembered {
  readonly md5: string;
  readonly writtenAt: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class EcProtect extends ForwardingLayer<TaggedBlockStore> implements TaggedBlockStore, StatsSource {
  /** Insertion order = write order, so the first entry expires first. */
  private readonly remembered = new Map<number, Remembered>();
  private dataHits = 0;
  /** Time writers waited (upstream's md5_cache_*_delays are times, not counts). */
  private fullDelayMs = 0;
  private writeDelayMs = 0;
  private stale = 0;

  constructor(
    inner: TaggedBlockStore,
    private readonly options: EcProtectOptions,
    private readonly log: Logger,
  ) {
    super(inner);
  }

  private expire(now: number): void {
    if (this.options.cacheTimeMs === 0) return;
    for (const [block, r] of this.remembered) {
      if (now - r.writtenAt < this.options.cacheTimeMs) break;
      this.remembered.delete(block);
    }
  }

  async readBlock(blockNum: number): Promise<Buffer> {
    return (await this.readBlockTagged(blockNum)).data;
  }

  async readBlockTagged(blockNum: number, into?: Buffer): Promise<TaggedBlock> {
    checkBlockNum(this, blockNum);
    this.expire(Date.now());
    const expected = this.remembered.get(blockNum);
    if (!expected) return this.inner.readBlockTagged(blockNum, into);
    const pauses = retryPauses(this.options);
    for (;;) {
      const read = await this.inner.readBlockTagged(blockNum, into);
      if (md5(read.data).toString('hex') === expected.md5) {
        this.dataHits++;
        return read;
      }
      this.stale++;
      const pause = pauses.next();
      if (pause.done === true) throw new BlockIOError(blockNum, 'the store keeps answering an older version (stale data)');
      this.log.debug(`block ${blockNum}: stale data from the store; retrying in ${pause.value} ms`);
      await sleep(pause.value);
    }
  }

  /** A block written lately is read in full and checked: a 304 would say nothing about staleness. */
  async readBlockIfChanged(blockNum: number, etag: ETag): Promise<TaggedBlock | null> {
    this.expire(Date.now());
    if (!this.remembered.has(blockNum)) return this.inner.readBlockIfChanged(blockNum, etag);
    const read = await this.readBlockTagged(blockNum);
    return read.etag === etag ? null : read;
  }

  storesAs(blockNum: number, data: Buffer, etag: ETag): Promise<boolean> {
    return this.inner.storesAs(blockNum, data, etag);
  }

  async writeBlock(blockNum: number, data: Buffer | null): Promise<ETag> {
    checkBlockNum(this, blockNum);
    await this.beforeWrites([blockNum]);
    const etag = await this.inner.writeBlock(blockNum, data);
    this.remember([blockNum], md5(data ?? Buffer.alloc(this.blockSize)).toString('hex'));
    return etag;
  }

  /** Each block is kept as a zero write of it would be: spaced after its last write, then remembered as zeros. */
  async trimBlocks(blockNums: readonly number[]): Promise<void> {
    for (const n of blockNums) checkBlockNum(this, n);
    const zeros = md5(Buffer.alloc(this.blockSize)).toString('hex');
    // Groups the cache can hold at once: a group waits for room for all of its blocks.
    const groupSize = Math.max(1, this.options.cacheSize);
    for (let i = 0; i < blockNums.length; i += groupSize) {
      const group = blockNums.slice(i, i + groupSize);
      await this.beforeWrites(group);
      await trimThrough(this.inner, group);
      this.remember(group, zeros);
    }
  }

  /** Waits out --minWriteDelay since each block's last write, then for room in the cache for those not remembered. */
  private async beforeWrites(blockNums: readonly number[]): Promise<void> {
    const now = Date.now();
    this.expire(now);
    let wait = 0;
    for (const n of blockNums) {
      const previous = this.remembered.get(n);
      if (previous) wait = Math.max(wait, this.options.minWriteDelayMs - (now - previous.writtenAt));
    }
    if (wait > 0) {
      await sleep(wait);
      this.writeDelayMs += Date.now() - now;
    }
    const missing = (): number => blockNums.reduce((count, n) => count + (this.remembered.has(n) ? 0 : 1), 0);
    // Full: wait for the oldest entry to expire (or, without a time limit, forget it).
    while (this.remembered.size + missing() > this.options.cacheSize) {
      const oldest = this.remembered.entries().next().value;
      if (!oldest) break;
      if (this.options.cacheTimeMs === 0) this.remembered.delete(oldest[0]);
      else {
        const waitFrom = Date.now();
        await sleep(Math.max(1, oldest[1].writtenAt + this.options.cacheTimeMs - waitFrom));
        this.fullDelayMs += Date.now() - waitFrom;
      }
      this.expire(Date.now());
    }
  }

  /** These blocks were just stored with data of this MD5: reads must return it for a while. */
  private remember(blockNums: readonly number[], digest: string): void {
    const writtenAt = Date.now();
    for (const n of blockNums) {
      this.remembered.delete(n); // to the end: insertion order is write order
      this.remembered.set(n, { md5: digest, writtenAt });
    }
  }

  statsLines(): readonly StatLine[] {
    return [
      ['md5_cache_current_size', blocks(this.remembered.size)],
      ['md5_cache_data_hits', this.dataHits],
      ['md5_cache_full_delays', totalSeconds(this.fullDelayMs)],
      ['md5_cache_write_delays', totalSeconds(this.writeDelayMs)],
    ];
  }

  extraStatsLines(): readonly StatLine[] {
    // Reads the guard caught answering old data (upstream retries them without counting).
    return [['md5_cache_stale_reads', this.stale]];
  }

  resetStats(): void {
    this.dataHits = this.fullDelayMs = this.writeDelayMs = this.stale = 0;
  }
}
