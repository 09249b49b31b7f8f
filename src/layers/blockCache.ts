// The block cache: an LRU of whole blocks held in native slots (anonymous memory, or a cache
// file); while a reader loops over more blocks than it has, most stay in place (loopGuard.ts). Reads of cached blocks cost no request; writes land in a slot and return; dirty blocks
// are uploaded by a bounded pool after --blockCacheWriteDelay, sooner under pressure, and stay
// dirty until an upload of their latest version succeeds. A block rewritten while it uploads is
// uploaded again afterwards. Sequential readers trigger read-ahead into free or clean slots.
// A trim drops the blocks' copies, clean or dirty (never uploaded afterwards), once no load or
// upload of them is under way, and passes the trim down before it resolves.
// With a block map (the FUSE session's view of the slots), the session reads the blocks held
// whole and writes into them, and into spare slots lent it for whole new blocks, without asking:
// it tells noteHits() and noteWritten() afterwards. The map (always there: without a session the
// cache makes its own) holds which block is in which slot, each cell's state (loading, readable,
// writable, dirty, uploading) and the LRU order of the evictable ones; this cache decides the
// rest (what to fetch, upload, read ahead and evict, and when) and keeps what it waits on.

import { checkBlockNum, ZERO_ETAG, type BlockStore, type ETag, type ListNonZeroOptions, type TaggedBlockStore } from '../store/blockStore';
import { blocks, ratio, type StatLine, type StatsSource } from '../stats/stats';
import { BlockMaps, isZeroBlock, type BlockMap, type SlotStore } from '../native/addon';
import type { Logger } from '../util/log';
import type { ProgressCallback } from '../util/progress';
import { trimThrough } from '../store/trim';
import { LoopGuard, cyclingSlots } from './loopGuard';
import type { KnownZeros } from './zeroBlocks';
import { ReadAhead } from './readAhead';
import { addRange, gaps, type ByteRange } from './byteRanges';
import { etagBytes, listSome, plural, verifyRestoredSlots, type RestoredSlot } from './cacheFileVerify';
import { systemClock, type Clock } from '../util/clock';

/** The cache flags (see config), with `size` already capped to the disk, and where the slots live. */
/** The block cache's settings, as the flags give them. */
export interface BlockCacheSettings {
  /** Blocks; 0 = no block cache. */
  readonly size: number;
  readonly writeDelayMs: number;
  /** Uploads in flight at most: WRITE_BEHIND_UPLOADS of them unless a flush waits on a slow store. */
  readonly threads: number;
  /** Idle clean blocks are evicted after this long (0 = never). */
  readonly timeoutMs: number;
  /** Writers wait while this many blocks are dirty (0 = no limit but the cache size). */
  readonly maxDirty: number;
  /** A write returns only once uploaded. */
  readonly sync: boolean;
  /** Blocks below this number are evicted last. */
  readonly numProtected: number;
  readonly readAhead: number;
  readonly readAheadTrigger: number;
}

export interface BlockCacheOptions extends BlockCacheSettings {
  /** The slots live in a cache file: order its writes for crash safety. */
  readonly persistent: boolean;
  /**
   * Blocks known to be all zeros (by the zero cache above, from --listBlocks or earlier reads):
   * read-ahead passes over them, as reading them costs the reader nothing and S3 a 404 each.
   */
  readonly knownZero?: KnownZeros | undefined;
  /**
   * The map the FUSE session reads and writes through. Every entry of this cache has a cell
   * there (claimed before its slot is filled); a block is published once its slot holds all of
   * it, made writable there unless a cache file or synchronous writes need each write here,
   * and removed before its slot is reused. Without one the cache keeps its own.
   */
  readonly map?: BlockMap | undefined;
  /** A FUSE session reads and writes through the map: it is lent spare slots and may write. */
  readonly session?: boolean | undefined;
  /** The write delay's and the idle sweep's time (tests drive it by hand). */
  readonly clock?: Clock | undefined;
  /**
   * A trim of at most this many blocks (and a quarter of the slots) is a write of zeros, stored
   * later as any write is (a DELETE each), rather than a delete sent down at once and waited
   * for; 0 or absent: none is. Never with synchronous writes.
   */
  readonly writeBackTrims?: number | undefined;
}

/**
 * Trims written back (see writeBackTrims). The loop device sends nothing else while a discard is
 * out, so a small one waited on (ext4's lazy zeroing of an inode table: 2 MiB, 8 blocks of 256k)
 * held every write behind it for a round trip; upstream writes every trimmed block as zeros. Up to
 * this many, the DELETEs that follow cost little next to that; a bigger trim is sent as
 * multi-object deletes (1000 keys to a request) and waited for.
 */
export const WRITE_BACK_TRIM_BLOCKS = 16;

/**
 * Uploads in flight at most while nobody waits for them, or while the store answers quickly:
 * more only add work then, each upload taking longer on the same busy cores (128 made a 256 MiB
 * write at 0 ms 6 % slower for 7 % more CPU, docs/performance.md).
 */
export const WRITE_BEHIND_UPLOADS = 64;
/**
 * A store whose round trip is at least this long is slow: a flush waiting on it may run up to
 * `threads` uploads, the round trips and not the cores being what holds it (the bench's endpoint
 * at 20 ms a request: the flush's tail went from 2.6-2.9 to 3.5 uploads a millisecond).
 */
export const SLOW_STORE_MS = 10;
/**
 * Uploads that start and end with at most this many others in flight are timed for the round
 * trip: under load every upload's time stretches, on a local store too (quiet ones took 1-6 ms at
 * 0 ms, 21-28 at 20 ms; ones that began quiet but ended among 60 others, 24 ms at 0 ms).
 */
const QUIET_UPLOADS = 2;
/** The round trip is the least of this many recent quiet uploads' times. */
const ROUND_TRIP_SAMPLES = 8;

interface Entry {
  readonly block: number;
  /** The fetch under way into the slot (the map has the cell loading meanwhile): what waiters await. */
  loading: Promise<void> | undefined;
  /** Bumped by every write; the block is dirty while it differs from storedVersion. */
  version: number;
  storedVersion: number;
  /** Writes between marking the block dirty and finishing their copy. */
  pendingWrites: number;
  /** Byte ranges of the slot that hold the block's data; null = all of it. */
  valid: ByteRange[] | null;
  /** Set while the rest of a partly written block is fetched (no upload starts meanwhile). */
  completing: Promise<void> | undefined;
  /** The latest upload's end (settled, never rejected): a trim waits for it before deleting. */
  uploadEnd: Promise<void> | undefined;
  dirtySince: number;
  retryAt: number;
  failures: number;
  /** Written whole by a writer that went on to the next block: once stored, evicted first. */
  streamed: boolean;
  /**
   * The store holds no object for the block: a fetch found none while no upload of ours could
   * land after it, or our last upload was its DELETE. Zeros uploaded then have nothing to delete.
   */
  storedAbsent: boolean;
}

interface FlushWaiter {
  readonly versions: Map<Entry, number>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

const MAX_RETRY_DELAY_MS = 30000;
/** Buffers kept for read-ahead fetches, at most this many bytes of them (more in flight allocate their own). */
const FETCH_BUFFER_BYTES = 8 * 1024 * 1024;
/** Spare slots lent to the session for new blocks: enough for this many bytes of writes between two of its reports. */
const SPARE_BYTES = 16 * 1024 * 1024;
/** Fresh slots mapped in ahead of use, so a block's first copy into one costs no page faults. */
const PREFAULT_AHEAD = 64;
/**
 * Memory mapped in, in the background, once the first block comes into the cache: a first pass
 * over the disk then pays no page faults while it competes for the CPU (about 7 % of a cold
 * sequential read on two cores). Not at mount: a mount nobody reads yet (or an idle one) would
 * pay for it, and its first read would compete with it. Beyond this, slots are mapped in just
 * ahead of use, so a big cache that is never filled does not take its memory.
 */
const PREFAULT_ON_FIRST_USE_BYTES = 256 * 1024 * 1024;
/**
 * How long after the first use that mapping-in starts: the first read or write, which someone is
 * waiting for, does not share the two cores with it. Started at once, it made a mount's first
 * read of a stored block about 12 ms slower here (80 ms from the process's start against 92).
 */
const PREFAULT_DELAY_MS = 50;

export class BlockCache implements BlockStore, StatsSource {
  readonly blockSize: number;
  readonly numBlocks: number;
  private readonly entries = new Map<number, Entry>();
  /** Each entry's cell: its slot, what the session may do with it, dirty, the LRU order. */
  private readonly map: BlockMap;
  /** Dirty entries, oldest first. */
  private readonly dirty = new Map<number, Entry>();
  private readonly freeSlots: number[] = [];
  private slotWaiters: Array<() => void> = [];
  private dirtyWaiters: Array<() => void> = [];
  private flushWaiters: FlushWaiter[] = [];
  private uploadsInFlight = 0;
  /** The times (ms) of the last quiet uploads, oldest first: the store's round trip is their least. */
  private readonly quietUploadMs: number[] = [];
  /** The upload slots filled up with blocks still waiting: none starts until `refillBatch` are free. */
  private refilling = false;
  private readonly refillBatch: number;
  private fetchesInFlight = 0;
  private urgent = 0;
  /** Cancels the timer of the next due upload. */
  private cancelPump: (() => void) | undefined;
  private stopSweeper: (() => void) | undefined;
  /** The first use's mapping-in, until it starts. */
  private cancelPrefault: (() => void) | undefined;
  private readonly clock: Clock;
  private closed = false;
  /** With a cache file: each block's last write under way, which its next write waits for. */
  private readonly writeLocks = new Map<number, Promise<void>>();
  /** Cache-file entries of freshly fetched clean blocks being written (after their data is synced). */
  private readonly persisting = new Set<Promise<void>>();
  private readonly readAhead: ReadAhead;
  private lastWrite = -2;
  /** Blocks being trimmed below (with how many trims): no upload or read-ahead of them starts meanwhile. */
  private readonly trimming = new Map<number, number>();
  /** Complete blocks a sequential writer has moved past: uploaded before the write delay is up. */
  private readonly eager = new Set<Entry>();
  private readonly zeros: Buffer;
  /** With a cache file, the copies uploads send, reused. */
  private readonly uploadBuffers: Buffer[] = [];
  /** With a cache file, read-ahead fetches read into these (the data goes on into the slot), not a new buffer per block. */
  private readonly fetchBuffers: Buffer[] = [];
  /**
   * Every slot's data as one Buffer (no cache file): a fetch lands its body straight in the slot
   * it owns until publish, with no buffer and no copy. Null with a cache file, whose bytes must
   * land in the order its ledger keeps.
   */
  private slotMemory: Buffer | null = null;
  /** The view over the slots is still to be made (viewSlotsSoon). */
  private viewWanted: boolean;
  /**
   * Slots uploads read in place (from slotMemory, no copy): a write of such a block moves it to a
   * copy in a fresh slot first, and the old one goes free when its upload ends.
   */
  private readonly uploadingFrom = new Set<number>();
  /** Slots below this are mapped in (or being mapped); free slots are handed out lowest first. */
  private prefaulted = 0;
  /** Slots to map in when the first block comes in; 0 once that prefault is on its way. */
  private prefaultOnFirstUse = 0;
  /** Set once the first use's mapping-in starts: before it, not even the slots lent to the session are mapped in. */
  private prefaultStarted = false;
  private readonly maxDirty: number;
  /** The session may write into published blocks (no cache file, no synchronous writes). */
  private readonly sessionWrites: boolean;
  /** Free slots lent to the session for new blocks, at most spareTarget. */
  private readonly lent = new Set<number>();
  private readonly spareTarget: number;
  /** Holds most of the cache while a reader loops over more blocks than it has slots (LRU's worst case). */
  private readonly loopGuard: LoopGuard;
  initialSize = 0;
  /** All-zero uploads of blocks the store already lacks: no DELETE sent. */
  private uploadsSkipped = 0;
  readHits = 0;
  readMisses = 0;
  writeHits = 0;
  writeMisses = 0;
  verified = 0;
  mismatch = 0;
  uploadFailures = 0;
  discardedDirty = 0;

  constructor(
    private readonly inner: TaggedBlockStore,
    private readonly slots: SlotStore,
    private readonly options: BlockCacheOptions,
    private readonly log: Logger,
  ) {
    this.blockSize = inner.blockSize;
    this.numBlocks = inner.numBlocks;
    this.clock = options.clock ?? systemClock;
    this.zeros = Buffer.alloc(inner.blockSize);
    // A digest task's sixteen lanes (two chains of eight, native/src/md5_lanes.rs); a quarter of
    // the slots where fewer uploads are allowed. Sixteen rather than eight: the 20 ms write through
    // ext4 took 0.86x the CPU (docs/performance.md).
    this.refillBatch = Math.max(1, Math.min(16, Math.floor(options.threads / 4)));
    this.maxDirty = options.maxDirty > 0 ? Math.min(options.maxDirty, options.size) : options.size;
    this.map = options.map ?? new BlockMaps(slots);
    this.viewWanted = !options.persistent;
    this.map.setProtected(options.numProtected);
    this.loopGuard = new LoopGuard(options.size);
    this.readAhead = new ReadAhead({ ...options, numBlocks: this.numBlocks });
    this.sessionWrites = options.session === true && !options.persistent && !options.sync;
    // A quarter of the cache at most: lent slots are not there for reads.
    this.spareTarget = this.sessionWrites ? Math.min(Math.ceil(SPARE_BYTES / this.blockSize), Math.floor(options.size / 4)) : 0;
    for (let s = options.size - 1; s >= 0; s--) this.freeSlots.push(s);
    if (this.sessionWrites) this.map.allowWrites(this.maxDirty);
    this.lendSpares(false);
    // After the spares: taking those is not the first use (they are mapped in with the rest).
    this.prefaultOnFirstUse = Math.min(options.size, Math.floor(PREFAULT_ON_FIRST_USE_BYTES / this.blockSize));
    if (options.timeoutMs > 0) this.stopSweeper = this.clock.every(Math.min(options.timeoutMs, 1000), () => this.evictIdle());
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }

  // ---- reload from a cache file ---------------------------------------------------------

  /**
   * Takes over the entries a cache file kept. Clean blocks are verified unless `verify` is off
   * (cacheFileVerify.ts: locally against their entry's ETag, then against the store), and served
   * as each is known. Which entries are
   * taken over is the cache file's own recovery policy (native/src/cache_recovery.rs, which the
   * crash harness checks): dirty ones are uploaded again when `recoverDirty`, else discarded;
   * a dirty one whose data does not give the checksum its entry carries (torn by a power cut)
   * is discarded with a warning, never uploaded; those and any out of range are cleared in the
   * file before this goes on. Returns what happened, for the log.
   */
  async restore(opts: {
    verify: boolean;
    recoverDirty: boolean;
    onProgress?: ProgressCallback;
  }): Promise<{ clean: number; dirty: number; discarded: number; dropped: number }> {
    const result = { clean: 0, dirty: 0, discarded: 0, dropped: 0 };
    const take = (slot: number): void => {
      const i = this.freeSlots.indexOf(slot);
      if (i >= 0) this.freeSlots.splice(i, 1);
    };
    const toVerify: RestoredSlot[] = [];
    const torn: number[] = [];
    for (const f of this.slots.recover(this.numBlocks, this.options.size, opts.recoverDirty)) {
      if (f.fate === 'discarded') {
        result.discarded++;
        continue;
      }
      if (f.fate === 'torn') torn.push(f.block);
      if (f.fate !== 'dirty' && f.fate !== 'clean') {
        result.dropped++;
        continue;
      }
      take(f.slot);
      const e = this.newEntry(f.block);
      this.map.claim(f.block, f.slot);
      this.entries.set(f.block, e);
      if (f.dirty) {
        e.version = 1;
        e.dirtySince = this.clock.now();
        this.dirty.set(f.block, e);
        this.map.markDirty(f.block);
        this.publish(e);
        result.dirty++;
      } else if (opts.verify) {
        toVerify.push({ block: f.block, slot: f.slot, etag: f.etag });
      } else {
        this.publish(e);
        result.clean++;
      }
    }
    if (torn.length > 0) {
      this.log.warn(
        `cache file: ${torn.length} dirty ${plural(torn.length, 'block')} did not match the checksum of their entry (torn by a power cut?); ` +
          `not uploaded, S3's version stands (${listSome(torn)})`,
      );
    }
    // Verified in parallel, as many at once as uploads may run; each served once it is known.
    await verifyRestoredSlots(this.inner, this.slots, toVerify, {
      threads: this.options.threads,
      blockSize: this.blockSize,
      log: this.log,
      onProgress: opts.onProgress,
      onVerdict: (r, verdict) => {
        const e = this.entries.get(r.block)!;
        if (verdict === 'dropped') {
          this.forget(r.block);
          this.freeSlots.push(r.slot);
          result.dropped++;
          return;
        }
        if (verdict === 'kept') this.verified++;
        else this.mismatch++;
        this.publish(e);
        result.clean++;
      },
    });
    this.initialSize = this.entries.size;
    this.pump();
    return result;
  }

  // ---- slots ----------------------------------------------------------------------------

  /**
   * The entry's slot holds the whole block, current: the session need not ask us first, and
   * unless it is dirty the map files it as evictable, the most recently used.
   */
  private publish(e: Entry): void {
    this.map.publish(e.block, this.sessionWrites);
  }

  /** The entry's slot, as the map (its owner) has it: every entry has a cell until forgotten. */
  private slotOf(e: Entry): number {
    const slot = this.map.slotOf(e.block);
    if (slot === null) throw new Error(`block cache: block ${e.block} has an entry but no cell in the map`);
    return slot;
  }

  /** Drops the entry, whatever its state; the map lets go of it before its slot can be reused. */
  private forget(block: number): void {
    this.map.remove(block);
    this.entries.delete(block);
  }

  /** The entry the map gave up as a victim goes too; its slot is free (returned). */
  private evicted(block: number, slot: number): number {
    if (!this.entries.delete(block))
      this.log.error(`block cache: the map evicted block ${block} from slot ${slot}, which the cache has no entry for`);
    // The entry goes before the slot is reused (the write path syncs it before new data lands).
    if (this.options.persistent) this.slots.clearEntry(slot);
    return slot;
  }

  /**
   * A new entry in `slot`, unless the session has just written the block as a new one: then the
   * slot goes back and the session's entry is taken over (returned instead).
   */
  private claim(blockNum: number, slot: number, loading: boolean): [entry: Entry, fresh: boolean] {
    if (!this.map.claim(blockNum, slot, loading)) {
      this.freeSlots.push(slot);
      this.wake('slotWaiters');
      const adopted = this.adopt(blockNum);
      // Only this thread removes cells: the session's is still there.
      if (!adopted) throw new Error(`block cache: block ${blockNum} is in the map, in no slot`);
      return [adopted, false];
    }
    const e = this.newEntry(blockNum);
    this.entries.set(blockNum, e);
    return [e, true];
  }

  /** Takes over a block the session wrote into a lent slot, dirty; undefined if the map has no such block. */
  private adopt(blockNum: number): Entry | undefined {
    const slot = this.map.slotOf(blockNum);
    if (slot === null) return undefined;
    this.lent.delete(slot);
    const e = this.newEntry(blockNum);
    this.entries.set(blockNum, e);
    this.writeMisses++;
    this.writtenBeside(e);
    return e;
  }

  /** The session wrote the entry's block: a new version, dirty. */
  private writtenBeside(e: Entry): void {
    e.version++;
    if (!this.dirty.has(e.block)) {
      e.dirtySince = this.clock.now();
      this.dirty.set(e.block, e);
    }
  }

  /**
   * Blocks the session wrote through the map (BlockStore.noteWritten): dirty from now on,
   * uploaded as any others. A block the map no longer holds was trimmed since.
   */
  noteWritten(blockNums: ArrayLike<number>): void {
    const map = this.map;
    for (let i = 0; i < blockNums.length; i++) {
      const b = blockNums[i]!;
      if (map.slotOf(b) === null) continue;
      const e = this.entries.get(b);
      if (e === undefined) {
        this.adopt(b);
      } else {
        this.writeHits++;
        this.writtenBeside(e);
      }
      this.noteWrite(b);
    }
    this.lendSpares(map.takeShortage());
    this.pump();
  }

  /**
   * Keeps the session supplied with free slots for new blocks. Only free ones unless it ran
   * short (`short`): then clean blocks are evicted for it, as a write through here would.
   */
  private lendSpares(short: boolean): void {
    const map = this.map;
    if (!this.sessionWrites || this.closed) return;
    while (this.lent.size < this.spareTarget && (this.freeSlots.length > 0 || short)) {
      const slot = this.takeSlotNow(true);
      if (slot === undefined) break;
      this.lent.add(slot);
      map.lend(slot);
    }
  }

  /** Maps in the first `count` slots, a batch at a time so the libuv pool stays free for others. */
  private prefaultUpTo(count: number): void {
    if (this.options.persistent || this.prefaulted >= count || this.closed) return;
    const first = this.prefaulted;
    this.prefaulted = Math.min(count, first + PREFAULT_AHEAD);
    this.slots.prefault(first, this.prefaulted - first).then(
      () => this.prefaultUpTo(count),
      () => {},
    );
  }

  /** Keeps the never-used slots about to be handed out mapped in, off the JS thread. */
  private prefaultAhead(slot: number): void {
    if (
      !this.prefaultStarted ||
      this.options.persistent ||
      this.prefaulted >= this.options.size ||
      slot + PREFAULT_AHEAD / 2 < this.prefaulted
    )
      return;
    const first = this.prefaulted;
    this.prefaulted = Math.min(this.options.size, first + PREFAULT_AHEAD);
    this.slots.prefault(first, this.prefaulted - first).catch(() => {});
  }

  /**
   * A free slot, or the slot of the least recently used clean block, or (unless `forSession`)
   * one lent to the session; undefined if all are busy.
   */
  private takeSlotNow(forSession = false): number | undefined {
    if (this.prefaultOnFirstUse > 0) {
      const count = this.prefaultOnFirstUse;
      this.prefaultOnFirstUse = 0;
      this.cancelPrefault = this.clock.after(PREFAULT_DELAY_MS, () => {
        this.prefaultStarted = true;
        this.prefaultUpTo(count);
      });
    }
    return this.nextSlot(forSession);
  }

  /** takeSlotNow without counting as the cache's first use (which maps its memory in). */
  private nextSlot(forSession = false): number | undefined {
    const free = this.freeSlots.pop();
    if (free !== undefined) {
      this.prefaultAhead(free);
      return free;
    }
    // The least recently used block neither busy nor dirty (in the map's view, which has the
    // session's writes too: a block it wrote since its last upload is never a victim).
    const victim = this.map.takeVictim();
    if (victim === null) return forSession ? undefined : this.reclaimSpare();
    this.loopGuard.evicted(victim[0]!);
    return this.evicted(victim[0]!, victim[1]!);
  }

  /** With every other slot busy, a slot lent to the session comes back (if it has one left). */
  private reclaimSpare(): number | undefined {
    if (this.lent.size === 0) return undefined;
    for (const slot of this.map.reclaim()) {
      this.lent.delete(slot);
      this.freeSlots.push(slot);
    }
    return this.freeSlots.pop();
  }

  /** Waits for a slot, pushing uploads along so dirty blocks become evictable. */
  private async takeSlot(): Promise<number> {
    for (;;) {
      const slot = this.takeSlotNow();
      if (slot !== undefined) return slot;
      this.urgent++;
      this.pump();
      try {
        await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
      } finally {
        this.urgent--;
      }
    }
  }

  private wake(waiters: 'slotWaiters' | 'dirtyWaiters'): void {
    const list = this[waiters];
    this[waiters] = [];
    for (const w of list) w();
  }

  /** A hit answered here: the block moves to the young end of the map's LRU order. */
  private touch(e: Entry): void {
    this.map.touch(e.block);
  }

  private evictIdle(): void {
    const idle = this.map.takeIdle(this.options.timeoutMs);
    for (let i = 0; i + 1 < idle.length; i += 2) this.freeSlots.push(this.evicted(idle[i]!, idle[i + 1]!));
    if (idle.length > 0) this.wake('slotWaiters');
  }

  // ---- reads ----------------------------------------------------------------------------

  async readBlock(blockNum: number): Promise<Buffer> {
    for (;;) {
      const found = await this.obtain(blockNum);
      if (Buffer.isBuffer(found)) return found;
      if (this.holds(found)) return this.slots.read(this.slotOf(found));
    }
  }

  /**
   * Whether an entry `obtain` resolved still owns its slot with the whole block: other callbacks
   * run between its return and the caller's next step, and may have evicted it. If not, ask again.
   */
  private holds(e: Entry): boolean {
    return this.entries.get(e.block) === e && !e.loading && e.valid === null;
  }

  /**
   * The block's complete, cached entry (check it with `holds` after awaiting), or its data when it
   * was just fetched or read through. Counts the hit or miss and drives read-ahead.
   */
  private async obtain(blockNum: number): Promise<Entry | Buffer> {
    checkBlockNum(this, blockNum);
    let e = this.entries.get(blockNum);
    if (e)
      this.readHits++; // cached, or already being fetched (by read-ahead, say)
    else this.readMisses++;
    // The youngest block now: the read-ahead it drives takes its slots from the oldest.
    if (e && !e.loading) this.touch(e);
    if (e) this.noteRead(blockNum);
    if (e?.loading) {
      await e.loading;
      e = this.entries.get(blockNum);
      if (!e) return this.inner.readBlock(blockNum); // that fetch failed: try once more, directly
    }
    if (e) {
      if (e.valid !== null) await this.complete(e);
      this.touch(e);
      return e;
    }
    // Every slot busy with dirty data: read through rather than wait on uploads. A block being
    // trimmed is read through too: a copy fetched now might predate the delete.
    const slot = this.trimming.has(blockNum) ? undefined : this.takeSlotNow();
    const fetched = slot === undefined ? this.inner.readBlock(blockNum) : this.load(blockNum, slot);
    // The demand fetch is under way first; read-ahead follows it.
    this.noteRead(blockNum);
    return fetched;
  }

  /** The bytes are copied straight out of the slot into the caller's buffer. */
  async readBlockPart(blockNum: number, offset: number, target: Buffer): Promise<void> {
    checkBlockNum(this, blockNum);
    const e = this.entries.get(blockNum);
    if (e && !e.loading && e.valid === null) {
      // The common case, without a promise in between.
      this.readHits++;
      this.touch(e);
      this.slots.readInto(this.slotOf(e), offset, target);
      // Read-ahead only now: it takes its slots from the least recently used blocks, which this
      // one may have been until the copy.
      this.noteRead(blockNum);
      return;
    }
    for (;;) {
      const found = await this.obtain(blockNum);
      if (Buffer.isBuffer(found)) {
        found.copy(target, 0, offset, offset + target.length);
        return;
      }
      if (this.holds(found)) {
        this.slots.readInto(this.slotOf(found), offset, target);
        return;
      }
    }
  }

  /**
   * Reads the FUSE session answered from the map, in order: counted, and driving read-ahead as
   * reads through readBlock do (the map stamped their use itself).
   */
  noteHits(blocks: Iterable<number>): void {
    for (const b of blocks) {
      this.readHits++;
      this.noteRead(b);
    }
  }

  /**
   * A read-ahead's load: nobody takes its data, so the fetch lands in the slot itself or, with a
   * cache file, in a reused buffer, free again once the data is in the slot.
   */
  private async prefetch(blockNum: number, slot: number, makeView: boolean): Promise<void> {
    if (this.slotMemory !== null) {
      await this.load(blockNum, slot);
      return;
    }
    const into = this.fetchBuffers.pop() ?? Buffer.allocUnsafeSlow(this.blockSize);
    try {
      await this.load(blockNum, slot, into, makeView);
    } finally {
      if (this.fetchBuffers.length * this.blockSize < FETCH_BUFFER_BYTES) this.fetchBuffers.push(into);
    }
  }

  /**
   * Fetches a block into a slot and resolves its data (the session's, if it has just written the
   * block), or its entry when the body landed in the slot itself (check it with `holds`). With
   * `into` the data may be that buffer: the caller must not keep it.
   */
  private async load(blockNum: number, slot: number, into?: Buffer, makeView = true): Promise<Buffer | Entry> {
    let done!: () => void;
    const [e, fresh] = this.claim(blockNum, slot, true);
    // Adopted instead: the session wrote the block as new meanwhile, and its slot has the data.
    if (!fresh) return this.slots.read(this.slotOf(e));
    // The slot is ours alone from the claim until publish: the fetch may land in it.
    const inSlot = this.slotMemory?.subarray(slot * this.blockSize, (slot + 1) * this.blockSize);
    if (inSlot !== undefined) into = inSlot;
    this.guardLoop(blockNum);
    e.loading = new Promise<void>((resolve) => (done = resolve));
    this.fetchesInFlight++;
    // A slot taken from an evicted block had its entry cleared, not yet synced: that goes to
    // the file (beside the fetch) before the new data lands, or a power cut could pair them.
    const cleared = this.options.persistent ? this.slots.syncEntry(slot) : undefined;
    cleared?.catch(() => {}); // awaited below
    try {
      const { data, etag } = await this.inner.readBlockTagged(blockNum, into);
      // Not cached, so no upload of the block was in flight to land after this answer.
      e.storedAbsent = etag === ZERO_ETAG;
      if (cleared) await cleared;
      // Not there already: an absent block's zeros, a decoded body, or the store's own buffer.
      if (data !== inSlot) this.slots.write(slot, data);
      e.loading = undefined;
      this.publish(e);
      // A writer may be waiting for a slot with nothing dirty left to free one: this is its turn.
      this.wake('slotWaiters');
      if (this.options.persistent) this.track(this.persistClean(e, etag));
      return data === inSlot ? e : data;
    } catch (err) {
      this.forget(blockNum);
      this.freeSlots.push(slot);
      this.wake('slotWaiters');
      throw err;
    } finally {
      this.fetchesInFlight--;
      e.loading = undefined;
      done();
      if (makeView) this.viewSlotsSoon();
    }
  }

  /**
   * Makes the view over the slots (fetches land in it, uploads read from it), once the first
   * fetch is done or the first upload starts; until then both copy. V8 counts the view's memory
   * as its own and collects its whole heap at once: at mount, that delayed the first read by
   * about 30 ms here.
   */
  private viewSlotsSoon(): void {
    if (!this.viewWanted) return;
    this.viewWanted = false;
    setImmediate(() => {
      if (!this.closed) this.slotMemory = this.slots.dataView();
    });
  }

  /**
   * The view at once, for the first upload: uploads start in bursts (write-behind, a flush), and
   * until the view exists each copies its block into a fresh buffer (48 of them at a 256 MiB
   * write's start, 16 ms of the JS thread here); the view costs the same whenever it is made.
   */
  private viewSlotsNow(): void {
    if (!this.viewWanted || this.closed) return;
    this.viewWanted = false;
    this.slotMemory = this.slots.dataView();
  }

  /** A fetch into a slot: a refault of a block evicted lately may start a hold, a fresh one end it. */
  private guardLoop(blockNum: number): void {
    const action = this.loopGuard.loaded(blockNum);
    if (action === 'hold') {
      // Slots lent to the session stay out of it, and enough cycle for read-ahead.
      const cycling = cyclingSlots(this.options.size, this.options.readAhead);
      const held = this.map.hold(cycling, Math.max(0, this.options.size - this.spareTarget - cycling));
      this.log.debug(`block cache: reads loop over more blocks than it holds; keeping ${held} in place`);
    } else if (action === 'release') {
      this.map.releaseHeld();
      this.log.debug('block cache: the reads moved on; plain LRU again');
    }
  }

  /** Keeps `work` (which never rejects) until it ends, so that close() can wait for it. */
  private track(work: Promise<void>): void {
    this.persisting.add(work);
    void work.finally(() => this.persisting.delete(work));
  }

  /** Claims a clean slot in the cache file once its data is there (never before). */
  private async persistClean(e: Entry, etag: ETag): Promise<void> {
    const version = e.version;
    const slot = this.slotOf(e);
    try {
      await this.slots.syncData(slot);
      // Not while a write of the block is under way: it has cleared the entry and is about to
      // copy new data into the slot.
      if (this.entries.get(e.block) === e && e.version === version && e.storedVersion === version && e.pendingWrites === 0) {
        this.slots.setEntry(slot, e.block, false, etagBytes(etag));
      }
    } catch (err) {
      this.log.warn(`cache file: ${(err as Error).message}`);
    }
  }

  /** A read drives read-ahead (readAhead.ts). */
  private noteRead(blockNum: number): void {
    this.fetchAhead(this.readAhead.onRead(blockNum), false);
  }

  /**
   * Fetches blocks before anyone reads them: the mount's start, for block 0, which whatever the
   * file holds reads first. It is not the cache's first use: a mount nobody reads maps no memory
   * in, and the view over the slots is left for the first read to make (see viewSlotsSoon), whose
   * collection would otherwise land on the mount's first reads.
   */
  warm(blockNums: Iterable<number>): void {
    this.fetchAhead(blockNums, true);
  }

  /**
   * Fetches blocks nobody has asked for yet into free or clean slots, never dirty ones, stopping
   * when there are none; blocks cached, being trimmed or known to be zeros are left alone. A
   * failure is the reader's to meet, if one comes.
   */
  private fetchAhead(blockNums: Iterable<number>, warmUp: boolean): void {
    for (const b of blockNums) {
      checkBlockNum(this, b);
      if (this.entries.has(b) || this.trimming.has(b) || this.options.knownZero?.isKnownZero(b) === true) continue;
      const slot = warmUp ? this.nextSlot() : this.takeSlotNow();
      if (slot === undefined) break;
      const why = warmUp ? 'warm-up' : 'read-ahead';
      this.prefetch(b, slot, !warmUp).catch((err: unknown) => this.log.debug(`${why} of block ${b}: ${(err as Error).message}`));
    }
  }

  // ---- writes ---------------------------------------------------------------------------

  async writeBlock(blockNum: number, data: Buffer | null): Promise<void> {
    if (this.options.persistent) return this.serialized(blockNum, () => this.writeBlockNow(blockNum, data));
    return this.writeBlockNow(blockNum, data);
  }

  /**
   * With a cache file a block's writes run one at a time, a partial write's read included: each
   * clears the entry, copies, syncs and claims the slot again, and two at once could put one's
   * data under the other's claim (the file's ledger refuses that write), or a partial write
   * could read the block before another's data landed and lose it (native/src/crash_harness.rs).
   */
  private async serialized(blockNum: number, work: () => Promise<void>): Promise<void> {
    const before = this.writeLocks.get(blockNum);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const queued = before ? before.then(() => mine) : mine;
    this.writeLocks.set(blockNum, queued);
    try {
      if (before) await before;
      await work();
    } finally {
      release();
      if (this.writeLocks.get(blockNum) === queued) this.writeLocks.delete(blockNum);
    }
  }

  private async writeBlockNow(blockNum: number, data: Buffer | null): Promise<void> {
    const entry = await this.beginWrite(blockNum);
    try {
      const slot = await this.slotForWrite(entry);
      if (this.options.persistent) {
        // The old claim goes first, so a crash mid-copy cannot pair the entry with torn data.
        this.slots.clearEntry(slot);
        await this.slots.syncEntry(slot);
      }
      this.slots.write(slot, data ?? this.zeros);
      entry.valid = null;
      this.publish(entry);
      const version = ++entry.version;
      if (this.options.persistent) {
        // Its checksum is taken with the sync, for the dirty entry that is to claim it.
        await this.slots.syncData(slot, true);
        if (entry.version === version) {
          this.slots.setEntry(slot, blockNum, true, null);
          await this.slots.syncEntry(slot);
        }
      }
    } finally {
      entry.pendingWrites--;
    }
    await this.endWrite(entry);
  }

  /**
   * The slot a write of the (busy, dirty) entry goes into: its own, unless an upload reads that
   * one in place; then the block first moves to a copy in a fresh slot (upstream's WRITING2), and
   * the upload keeps the old one until it ends. Nothing is awaited when the slot is free to write.
   */
  private slotForWrite(e: Entry): number | Promise<number> {
    const slot = this.slotOf(e);
    return this.uploadingFrom.has(slot) ? this.moveFromUpload(e) : slot;
  }

  private async moveFromUpload(e: Entry): Promise<number> {
    for (;;) {
      const slot = this.slotOf(e);
      if (!this.uploadingFrom.has(slot)) return slot;
      const to = this.takeSlotNow();
      if (to === undefined) {
        // No slot to copy into (every other one dirty or busy): the upload's end frees this one.
        await e.uploadEnd;
        continue;
      }
      if (this.map.movePinned(e.block, to) !== null) return to;
      this.freeSlots.push(to);
      this.wake('slotWaiters');
    }
  }

  /** An upload that read `slot` in place ended: the slot is the block's again, or, if the block moved or went, free. */
  private endInPlace(e: Entry, slot: number): void {
    this.uploadingFrom.delete(slot);
    if (this.map.slotOf(e.block) === slot) return;
    this.freeSlots.push(slot);
    this.wake('slotWaiters');
  }

  /**
   * Part of a block, without fetching the rest: the slot records which bytes it holds, and the
   * rest is fetched only if the block is read or uploaded before later writes fill it. With a
   * cache file this is read/modify/write instead, so a crash never leaves a half-known block.
   */
  async writeBlockPart(blockNum: number, offset: number, data: Buffer): Promise<void> {
    if (this.options.persistent) {
      return this.serialized(blockNum, async () => {
        const block = await this.readBlock(blockNum);
        data.copy(block, offset);
        await this.writeBlockNow(blockNum, block);
      });
    }
    if (offset < 0 || offset + data.length > this.blockSize) throw new RangeError(`part ${offset}+${data.length} outside the block`);
    const entry = await this.beginWrite(blockNum);
    try {
      this.slots.writePart(await this.slotForWrite(entry), offset, data);
      if (entry.valid !== null) {
        entry.valid = addRange(entry.valid, offset, offset + data.length, this.blockSize);
        if (entry.valid === null) this.publish(entry);
      }
      entry.version++;
    } finally {
      entry.pendingWrites--;
    }
    await this.endWrite(entry);
  }

  // ---- trims ----------------------------------------------------------------------------

  /**
   * The blocks are zeros from now on. A small trim (writeBackTrims) is written as zeros, stored
   * later as any write is. Otherwise their uploads and read-ahead are held back while this runs;
   * loads and uploads already under way end first (none may land after the delete). Then the
   * trim goes down, write-through, and on success the copies go: clean slots are freed, dirty
   * data is superseded (a flush waiting for it is satisfied: the block's newest state, zeros, is
   * stored). A failed trim keeps dirty blocks dirty (their uploads redo what the trim may have
   * undone) and drops clean ones (the store may hold zeros now).
   */
  async trimBlocks(blockNums: readonly number[]): Promise<void> {
    for (const n of blockNums) checkBlockNum(this, n);
    // At most a quarter of the slots, so that a small cache does not wait on its own DELETEs.
    if (blockNums.length <= Math.min(this.options.writeBackTrims ?? 0, Math.floor(this.options.size / 4)) && !this.options.sync) {
      await Promise.all(blockNums.map((n) => this.writeBlock(n, null)));
      return;
    }
    for (const n of blockNums) this.trimming.set(n, (this.trimming.get(n) ?? 0) + 1);
    try {
      await Promise.all(blockNums.map((n) => this.settle(n)));
      const held = new Map<Entry, number>(); // each cached entry, with its version as the trim began
      for (const n of blockNums) {
        const e = this.entries.get(n);
        if (e) held.set(e, e.version);
      }
      // A cache file must not claim the blocks across a crash after the delete: a recovered
      // dirty slot would upload old data over the trim.
      if (this.options.persistent) await this.syncEntries([...held.keys()], (slot) => this.slots.clearEntry(slot));
      try {
        await trimThrough(this.inner, blockNums);
      } catch (err) {
        const dirty = [...held].filter(([e]) => this.dirty.get(e.block) === e);
        for (const [e, version] of held) if (this.dirty.get(e.block) !== e) this.drop(e, version);
        // Unchanged dirty ones get their claim back (a write since has made its own).
        const unchanged = dirty.filter(([e, version]) => e.version === version && e.pendingWrites === 0).map(([e]) => e);
        if (this.options.persistent) await this.syncEntries(unchanged, (slot, e) => this.slots.setEntry(slot, e.block, true, null));
        throw err;
      }
      for (const [e, version] of held) this.drop(e, version);
    } finally {
      for (const n of blockNums) {
        const left = (this.trimming.get(n) ?? 1) - 1;
        if (left > 0) this.trimming.set(n, left);
        else this.trimming.delete(n);
      }
      this.settleFlushes();
      this.wake('slotWaiters');
      this.wake('dirtyWaiters');
      this.pump();
    }
  }

  /** Resolves once no fetch (of the block or of its missing part) or upload of it is under way. */
  private async settle(blockNum: number): Promise<void> {
    for (let e = this.entries.get(blockNum); e; e = this.entries.get(blockNum)) {
      const busy = e.loading ?? e.completing ?? (this.map.isUploading(blockNum) ? e.uploadEnd : undefined);
      if (busy === undefined) return;
      await busy;
    }
  }

  /** Applies `change` to each entry's cache-file claim (in its slot), then waits until they are all in the file. */
  private async syncEntries(entries: readonly Entry[], change: (slot: number, e: Entry) => void): Promise<void> {
    const slots = entries.map((e) => this.slotOf(e));
    entries.forEach((e, i) => change(slots[i]!, e));
    await Promise.all(slots.map((slot) => this.slots.syncEntry(slot)));
  }

  /** Forgets a trimmed block's copy and frees its slot, unless it was written since `version`. */
  private drop(e: Entry, version: number): void {
    if (this.entries.get(e.block) !== e || e.version !== version || e.pendingWrites > 0) return;
    if (this.dirty.delete(e.block)) {
      this.discardedDirty++;
      this.eager.delete(e);
      e.storedVersion = e.version;
    }
    const slot = this.slotOf(e);
    this.forget(e.block);
    if (!this.uploadingFrom.has(slot)) this.freeSlots.push(slot); // else freed when the upload ends
  }

  /** Counts, applies back-pressure, and returns the block's entry marked dirty and busy. */
  private async beginWrite(blockNum: number): Promise<Entry> {
    checkBlockNum(this, blockNum);
    if (this.entries.has(blockNum)) this.writeHits++;
    else this.writeMisses++;
    // Back-pressure: new dirty blocks wait while too many are dirty.
    while (!this.dirty.has(blockNum) && this.dirty.size >= this.maxDirty) {
      this.urgent++;
      this.pump();
      await new Promise<void>((resolve) => this.dirtyWaiters.push(resolve));
      this.urgent--;
    }
    return this.entryForWrite(blockNum);
  }

  private async endWrite(entry: Entry): Promise<void> {
    this.noteWrite(entry.block);
    // The session may have come here for want of a spare slot: it gets more.
    if (this.lent.size < this.spareTarget) this.lendSpares(this.map.takeShortage());
    this.pump();
    if (this.options.sync) await this.waitStored(new Map([[entry, entry.version]]));
  }

  /**
   * Write-behind: when a writer moves on to the next block, the one it finished will not change
   * soon, so waiting out --blockCacheWriteDelay (a maximum) only delays its upload. Nor is it
   * likely to be read back soon (the kernel's page cache has it): once stored it is evicted
   * before the blocks a filesystem uses again and again (its metadata and journal), which a
   * long write would otherwise push out, each to be fetched again for its next partial write.
   */
  private noteWrite(blockNum: number): void {
    if (blockNum === this.lastWrite) return;
    const written = this.entries.get(blockNum);
    if (written) written.streamed = false;
    const previous = blockNum === this.lastWrite + 1 ? this.entries.get(this.lastWrite) : undefined;
    this.lastWrite = blockNum;
    if (previous && previous.valid === null && !previous.loading) {
      previous.streamed = true;
      // Stored already (a flush, or no delay): demoted now; otherwise when its upload ends.
      if (this.dirty.get(previous.block) !== previous) this.map.demote(previous.block);
      else if (!this.map.isUploading(previous.block)) this.eager.add(previous);
    }
  }

  /**
   * Fetches the block and fills in the bytes no write has supplied yet. No upload of the block
   * starts meanwhile (it would have to complete it too); once done, the uploads get their turn.
   */
  private complete(e: Entry): Promise<void> {
    e.completing ??= (async () => {
      try {
        // Never uploaded, so nothing of ours can land after this answer (a trim's DELETE may,
        // which leaves the block absent all the same).
        const never = e.storedVersion === 0 && !this.map.isUploading(e.block);
        const { data: full, etag } = await this.inner.readBlockTagged(e.block);
        if (never && e.storedVersion === 0) e.storedAbsent = etag === ZERO_ETAG;
        // With a cache file, the slot's entry is free in the file before bytes land (a write
        // that has just cleared it may still be syncing the clear).
        if (this.options.persistent && e.valid !== null && this.entries.get(e.block) === e) await this.slots.syncEntry(this.slotOf(e));
        // Only the gaps as they are now: writes may have landed while fetching, and if they
        // filled the block (valid is null then) the fetched data is older than every byte.
        // An entry gone meanwhile (a trim dropped it) has no slot of its own any more.
        if (e.valid === null || this.entries.get(e.block) !== e) return;
        const slot = this.slotOf(e);
        for (const [a, b] of gaps(e.valid, this.blockSize)) this.slots.writePart(slot, a, full.subarray(a, b));
        e.valid = null;
        this.publish(e);
      } finally {
        e.completing = undefined;
        this.pump();
      }
    })();
    return e.completing;
  }

  /**
   * The block's entry (waiting out a load in progress, or new in a fresh slot), marked dirty and
   * busy in the same step as it is found: between an async function's return and its caller's
   * next step other callbacks run, and one of them could evict a clean entry handed back unmarked.
   */
  private async entryForWrite(blockNum: number): Promise<Entry> {
    for (;;) {
      let e = this.entries.get(blockNum);
      if (e?.loading) {
        await e.loading;
        continue;
      }
      if (!e) {
        const slot = await this.takeSlot();
        if (this.entries.has(blockNum)) {
          // Cached by a reader meanwhile: use that entry, and let another waiter have the slot.
          this.freeSlots.push(slot);
          this.wake('slotWaiters');
          continue;
        }
        const [claimed, fresh] = this.claim(blockNum, slot, false);
        e = claimed;
        // Nothing known until a write fills it, unless adopted (the session wrote it whole).
        if (fresh) e.valid = [];
      }
      // Dirty from now on: neither evictable nor marked clean by an upload finishing meanwhile.
      e.pendingWrites++;
      this.map.markDirty(blockNum);
      if (!this.dirty.has(blockNum)) {
        e.dirtySince = this.clock.now();
        this.dirty.set(blockNum, e);
      }
      return e;
    }
  }

  private newEntry(block: number): Entry {
    return {
      block,
      loading: undefined,
      version: 0,
      storedVersion: 0,
      pendingWrites: 0,
      valid: null,
      completing: undefined,
      uploadEnd: undefined,
      dirtySince: 0,
      retryAt: 0,
      failures: 0,
      streamed: false,
      storedAbsent: false,
    };
  }

  // ---- write-back -----------------------------------------------------------------------

  /** Starts whatever uploads are due, and a timer for the next one. */
  private pump(): void {
    if (this.closed && this.dirty.size === 0) return;
    // Every upload slot was taken: wait until a batch of them is free again, so that uploads
    // start together rather than one per completion, and their Content-MD5s are taken side by
    // side (sixteen blocks to a thread-pool task cost about what two do alone). The uploads
    // still in flight end soon and pump again.
    const cap = this.uploadCap();
    const free = cap - this.uploadsInFlight;
    if (this.refilling && free < this.refillBatch) return;
    this.refilling = false;
    const now = this.clock.now();
    // Under pressure (writers or readers waiting, a flush, a half-full cache) the delay is skipped.
    const hurry = this.urgent > 0 || this.flushWaiters.length > 0 || this.options.sync || this.dirty.size * 2 >= this.options.size;
    let nextDue = Infinity;
    for (const e of this.eager) {
      if (this.uploadsInFlight >= cap) {
        this.refilling = true;
        break;
      }
      this.eager.delete(e);
      if (!this.uploadBusy(e) && !this.writeUnderWay(e) && this.dirty.get(e.block) === e && e.retryAt <= now && !this.trimming.has(e.block))
        this.upload(e);
    }
    // `dirty` is ordered by dirtySince, so without a hurry the scan stops at the first block not
    // yet due: a write costs O(1) here, not a pass over every dirty block.
    for (const e of this.dirty.values()) {
      if (this.uploadsInFlight >= cap) {
        this.refilling = true;
        break;
      }
      if (this.uploadBusy(e) || this.writeUnderWay(e) || this.trimming.has(e.block)) continue;
      // A partly written block waits out its delay (the rest usually follows) unless a flush asks.
      const patient = e.valid !== null && this.flushWaiters.length === 0 && !this.options.sync;
      const delayDue = e.dirtySince + this.options.writeDelayMs;
      if (!hurry && delayDue > now) {
        nextDue = Math.min(nextDue, delayDue);
        break;
      }
      const due = Math.max(e.retryAt, hurry && !patient ? 0 : delayDue);
      if (due > now) {
        nextDue = Math.min(nextDue, due);
        continue;
      }
      this.upload(e);
    }
    this.cancelPump?.();
    this.cancelPump = undefined;
    if (nextDue !== Infinity && this.uploadsInFlight < cap) {
      this.cancelPump = this.clock.after(Math.max(1, nextDue - now), () => this.pump());
    }
  }

  /** Uploads allowed in flight now: all `threads` while a flush waits on a slow store, else at most WRITE_BEHIND_UPLOADS. */
  private uploadCap(): number {
    const calm = Math.min(this.options.threads, WRITE_BEHIND_UPLOADS);
    if (calm === this.options.threads || this.flushWaiters.length === 0 || this.quietUploadMs.length === 0) return calm;
    return Math.min(...this.quietUploadMs) >= SLOW_STORE_MS ? this.options.threads : calm;
  }

  private noteRoundTrip(ms: number): void {
    this.quietUploadMs.push(ms);
    if (this.quietUploadMs.length > ROUND_TRIP_SAMPLES) this.quietUploadMs.shift();
  }

  /** An upload of the block is under way, or about to be (the rest of it is being fetched first). */
  private uploadBusy(e: Entry): boolean {
    return e.completing !== undefined || this.map.isUploading(e.block);
  }

  /**
   * A write of the block is under way: its upload waits for the write (whose end pumps again).
   * Uploading now would send a version about to be replaced. Reading the slot in place, it would
   * pin the slot under the writer, which would then need a copy or wait; with an upload restarted
   * the moment one ends, the writer could wait forever. With a cache file (a copy taken under the
   * map's lock) an upload of zeros over an absent object ends without a request, so one started
   * under a write found itself superseded and started again at once, in the same call: a fresh
   * block being partly written while a flush hurried uploads recursed until the stack ran out.
   */
  private writeUnderWay(e: Entry): boolean {
    return e.pendingWrites > 0;
  }

  /** Starts uploading the entry's current version. */
  private upload(e: Entry): void {
    e.uploadEnd = this.uploadNow(e);
  }

  private async uploadNow(e: Entry): Promise<void> {
    this.viewSlotsNow();
    this.uploadsInFlight++;
    try {
      if (e.valid !== null) await this.complete(e);
    } catch (err) {
      this.uploadsInFlight--;
      this.uploadFailed(e, err);
      return;
    }
    const version = e.version;
    // Stored meanwhile: the fetch that completed the block pumped, and that upload (a skipped
    // DELETE ends at once) has already stored this version.
    const begun = e.storedVersion === version && this.dirty.get(e.block) !== e ? null : this.beginUpload(e);
    if (begun === null) {
      this.uploadsInFlight--;
      return;
    }
    const { data, generation, inPlace } = begun;
    let etag: ETag;
    try {
      const zero = isZeroBlock(data);
      if (zero && e.storedAbsent) {
        // Zeros over an absent object (ext4 zeroing part of a block it never wrote, say): no DELETE.
        etag = ZERO_ETAG;
        this.uploadsSkipped++;
      } else {
        e.storedAbsent = false; // unknown until the request succeeds
        const quiet = this.uploadsInFlight <= QUIET_UPLOADS + 1;
        const started = this.clock.now();
        etag = await this.inner.writeBlock(e.block, zero ? null : data);
        if (quiet && this.uploadsInFlight <= QUIET_UPLOADS + 1) this.noteRoundTrip(this.clock.now() - started);
        e.storedAbsent = zero;
      }
    } catch (err) {
      this.map.endUpload(e.block);
      if (inPlace !== undefined) this.endInPlace(e, inPlace);
      this.uploadsInFlight--;
      this.uploadFailed(e, err);
      return;
    }
    e.storedVersion = version;
    e.failures = 0;
    e.retryAt = 0;
    // Clean only if neither we nor the session wrote it since the copy (a cache file's clean
    // entry must match its slot: the session stops writing the block then).
    const unchanged = e.version === version && e.pendingWrites === 0;
    if (!unchanged) this.map.endUpload(e.block);
    if (unchanged && this.map.stored(e.block, generation, !this.options.persistent)) {
      this.dirty.delete(e.block);
      this.publish(e);
      if (e.streamed) this.map.demote(e.block);
      if (this.options.persistent) this.persistEntry(() => this.slots.setEntry(this.slotOf(e), e.block, false, etagBytes(etag)));
      this.wake('dirtyWaiters');
      this.wake('slotWaiters');
    } else {
      // Rewritten while uploading: upload the new version next, once (moved to the end to
      // keep `dirty` ordered by dirtySince).
      e.dirtySince = this.clock.now();
      this.dirty.delete(e.block);
      this.dirty.set(e.block, e);
    }
    this.uploadsInFlight--;
    if (inPlace !== undefined) this.endInPlace(e, inPlace);
    // The store keeps nothing after resolving: the buffer serves the next upload (reused memory,
    // where a fresh one costs a page fault per 4 KiB). A failed upload's buffer is dropped.
    else if (this.uploadBuffers.length < WRITE_BEHIND_UPLOADS) this.uploadBuffers.push(data);
    this.settleFlushes();
    this.pump();
  }

  /**
   * The data an upload of the entry sends, marked uploading in the map with the generation of
   * the session's writes it holds; null if another upload of it began while the rest was fetched
   * (that one goes on). Without a cache file the slot itself, pinned until the upload ends (a
   * write meanwhile moves the block: slotForWrite); with one, a copy taken under the map's lock.
   */
  private beginUpload(e: Entry): { data: Buffer; generation: number; inPlace: number | undefined } | null {
    if (this.slotMemory !== null) {
      const begun = this.map.beginUploadInPlace(e.block);
      if (begun === null) return null;
      const [generation, slot] = begun;
      this.uploadingFrom.add(slot);
      const data = this.slotMemory.subarray(slot * this.blockSize, (slot + 1) * this.blockSize);
      return { data, generation, inPlace: slot };
    }
    const data = this.uploadBuffers.pop() ?? Buffer.allocUnsafeSlow(this.blockSize);
    const generation = this.map.beginUpload(e.block, data);
    if (generation === null) {
      this.uploadBuffers.push(data);
      return null;
    }
    return { data, generation, inPlace: undefined };
  }

  /**
   * A change to a cache-file entry that may be refused (the file's ledger: its slot's data not
   * yet in the file): the entry is left as it is, which is safe (at worst a block uploaded again).
   */
  private persistEntry(change: () => void): void {
    try {
      change();
    } catch (err) {
      this.log.warn(`cache file: ${(err as Error).message}`);
    }
  }

  private uploadFailed(e: Entry, err: unknown): void {
    e.failures++;
    this.uploadFailures++;
    e.retryAt = this.clock.now() + Math.min(MAX_RETRY_DELAY_MS, 1000 * 2 ** Math.min(e.failures - 1, 5));
    this.log.error(`upload of block ${e.block} failed (attempt ${e.failures}, kept dirty, retrying): ${(err as Error).message}`);
    for (const w of this.flushWaiters) if (w.versions.has(e)) w.reject(err as Error);
    this.settleFlushes();
    this.pump();
  }

  /**
   * Resolves the flushes whose blocks are all stored. Each waiter forgets its blocks as they are
   * found stored, so the next check starts at the first one still waited for: called after every
   * upload, a rescan from the start made a flush of a full cache quadratic (half a million entry
   * visits, 17 MB of garbage, for a 256 MiB write's fsync).
   */
  private settleFlushes(): void {
    if (this.flushWaiters.length === 0) return;
    this.flushWaiters = this.flushWaiters.filter((w) => {
      const versions = w.versions;
      for (const e of versions.keys()) {
        if (e.storedVersion < versions.get(e)!) return true;
        versions.delete(e); // deleting the current key does not disturb a Map's iteration
      }
      w.resolve();
      return false;
    });
  }

  private waitStored(versions: Map<Entry, number>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const waiter: FlushWaiter = {
        versions,
        resolve: () => {
          if (settled) return;
          settled = true;
          resolve();
        },
        reject: (err) => {
          if (settled) return;
          settled = true;
          this.flushWaiters = this.flushWaiters.filter((w) => w !== waiter);
          reject(err);
        },
      };
      this.flushWaiters.push(waiter);
      this.settleFlushes();
      this.pump();
    });
  }

  /** Resolves once every block dirty at the call is stored; rejects if one of their uploads fails. */
  async flush(): Promise<void> {
    const versions = new Map<Entry, number>();
    for (const e of this.dirty.values()) versions.set(e, e.version);
    if (versions.size > 0) await this.waitStored(versions);
    await this.inner.flush();
  }

  /**
   * Dirty blocks first: the store may not have them yet (a cache file's recovered blocks wait
   * out the write delay), and a listing that missed them would call them zeros.
   */
  listNonZero(onBlock: (blockNum: number) => void, options?: ListNonZeroOptions): Promise<void> {
    for (const blockNum of [...this.dirty.keys()]) onBlock(blockNum);
    return this.inner.listNonZero(onBlock, options);
  }

  /**
   * The mount is over and everything is stored: the session gets nothing more from the slots,
   * and their memory goes back to the system on the thread pool while the unmount's last request
   * (the mounted flag) runs, rather than in the process's exit after it (28 ms for 256 MiB of
   * pages here). Frees nothing while any block is dirty, or a fetch or upload is under way, or
   * with a cache file (its bytes are the point). close() follows.
   */
  async retire(): Promise<void> {
    const busy = this.dirty.size > 0 || this.uploadsInFlight > 0 || this.fetchesInFlight > 0 || this.persisting.size > 0;
    if (this.options.persistent || busy) return;
    this.closed = true;
    this.map.close();
    // A write the session was still copying when the map closed (a lazy unmount's detached
    // mount) made its block dirty in the map before the copy: then nothing is freed.
    if (this.map.dirty > 0) return;
    await this.slots.discard();
  }

  async close(): Promise<void> {
    await this.flush();
    // Clean blocks fetched just before the unmount: their entries go into the cache file too.
    await Promise.all(this.persisting);
    this.closed = true;
    // A detached mount still open somewhere gets nothing more from the slots.
    this.map.close();
    this.cancelPump?.();
    this.stopSweeper?.();
    this.cancelPrefault?.();
    await this.inner.close();
  }

  statsLines(): readonly StatLine[] {
    return [
      ['block_cache_current_size', blocks(this.entries.size)],
      ['block_cache_initial_size', blocks(this.initialSize)],
      ['block_cache_dirty_ratio', ratio(this.dirty.size, this.options.size)],
      ['block_cache_read_hits', this.readHits],
      ['block_cache_read_misses', this.readMisses],
      ['block_cache_read_hit_ratio', ratio(this.readHits, this.readHits + this.readMisses)],
      ['block_cache_write_hits', this.writeHits],
      ['block_cache_write_misses', this.writeMisses],
      ['block_cache_write_hit_ratio', ratio(this.writeHits, this.writeHits + this.writeMisses)],
      ['block_cache_verified', this.verified],
      ['block_cache_mismatch', this.mismatch],
    ];
  }

  extraStatsLines(): readonly StatLine[] {
    // Uploads that failed after the store's own retries (the blocks stay dirty), all-zero uploads
    // of blocks the store already lacked (no DELETE sent), and dirty blocks a trim superseded
    // before they were uploaded.
    return [
      ['block_cache_upload_errors', this.uploadFailures],
      ['block_cache_zero_uploads_skipped', this.uploadsSkipped],
      ['block_cache_discarded_dirty', this.discardedDirty],
      // Blocks kept in place against a reader looping over more than the cache holds, and how often that began.
      ['block_cache_held', blocks(this.map.held)],
      ['block_cache_loop_holds', this.loopGuard.holds],
      // Gauges of work under way: blocks not yet in the store, uploads and fetches in flight.
      ['block_cache_dirty_blocks', blocks(this.dirty.size)],
      ['block_cache_uploads_in_flight', this.uploadsInFlight],
      ['block_cache_fetches_in_flight', this.fetchesInFlight],
    ];
  }

  resetStats(): void {
    this.readHits =
      this.readMisses =
      this.writeHits =
      this.writeMisses =
      this.verified =
      this.mismatch =
      this.uploadFailures =
      this.uploadsSkipped =
      this.discardedDirty =
        0;
    this.loopGuard.holds = 0;
  }
}
