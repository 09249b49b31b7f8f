// The block cache over its block map, with writes made as the FUSE session makes them
// (BlockMap.write, then noteWritten afterwards): nothing the session wrote is lost to an eviction,
// an upload racing it, the zero cache above or a trim; the map refuses what must go through JS.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BlockCache } from '../../dist/layers/blockCache.js';
import { ZeroCache } from '../../dist/layers/zeroCache.js';
import { SlotStores, BlockMaps } from '../../dist/native/addon.js';
import { silentLogger } from '../../dist/util/log.js';
import { cacheSettings } from '../helpers/settings.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const BS = 512;
const ZERO_ETAG = '0'.repeat(32);

/** @typedef {import('../../dist/store/blockStore.js').TaggedBlockStore} TaggedBlockStore */

/**
 * Blocks in memory; each upload takes `writeMs`; the uploads are recorded with their first byte.
 * @implements {TaggedBlockStore}
 */
class MemoryStore {
  /**
   * @param {number} numBlocks
   * @param {{ writeMs?: number }} [options]
   */
  constructor(numBlocks, { writeMs = 2 } = {}) {
    this.blockSize = BS;
    this.numBlocks = numBlocks;
    this.writeMs = writeMs;
    /** @type {Map<number, Buffer>} */
    this.blocks = new Map();
    /** @type {{ n: number, first: number }[]} */
    this.writes = [];
    /** @type {number[]} */
    this.reads = [];
  }
  async readBlock(n) {
    return (await this.readBlockTagged(n)).data;
  }
  async readBlockTagged(n) {
    this.reads.push(n);
    await sleep(1);
    const data = this.blocks.get(n);
    return { data: Buffer.from(data ?? Buffer.alloc(BS)), etag: data ? 'e'.repeat(32) : ZERO_ETAG };
  }
  async readBlockIfChanged() {
    return null;
  }
  async storesAs() {
    return true;
  }
  async writeBlock(n, data) {
    const copy = data === null ? null : Buffer.from(data);
    await sleep(this.writeMs);
    this.writes.push({ n, first: copy?.[0] ?? 0 });
    if (copy === null) this.blocks.delete(n);
    else this.blocks.set(n, copy);
    return copy ? 'e'.repeat(32) : ZERO_ETAG;
  }
  async trimBlocks(ns) {
    for (const n of ns) this.blocks.delete(n);
  }
  async flush() {}
  async listNonZero() {}
  async close() {}
}

const defaults = cacheSettings({ persistent: false });

function cacheWithMap(store, opts = {}, slots = SlotStores.anonymous(BS, opts.size ?? defaults.size), real = slots) {
  const map = new BlockMaps(real);
  const cache = new BlockCache(store, slots, { ...defaults, session: true, ...opts, map }, silentLogger);
  return { cache, map };
}

const block = (byte) => Buffer.alloc(BS, byte);

/** The cache makes its view over the slots (in-place fetches and uploads) once a first fetch is done. */
async function viewed(cache) {
  await cache.readBlock(99);
  await new Promise((resolve) => setImmediate(resolve));
  return cache;
}
/** What the FUSE front end does with the session's report: the map's log to the stack's top. */
const report = (map, top) => top.noteWritten(map.takeWritten());
const stat = (cache, name) => Object.fromEntries([...cache.statsLines(), ...cache.extraStatsLines()])[name];

test("the LRU order is the map's: a block the session read is kept over one read only earlier in JS", async () => {
  const store = new MemoryStore(100);
  for (const n of [1, 2, 3, 4]) store.blocks.set(n, block(n));
  const { cache, map } = cacheWithMap(store, { size: 3 });
  for (const n of [1, 2, 3]) await cache.readBlock(n);
  assert.equal(map.evictable, 3);
  assert.ok(map.read(1 * BS + 10, 20).equals(Buffer.alloc(20, 1)), 'the session reads block 1 (JS is told nothing)');
  await cache.readBlock(4); // a miss: the least recently used goes
  assert.equal(map.slotOf(2), null, 'block 2 was evicted, not block 1');
  assert.notEqual(map.slotOf(1), null);
  await cache.readBlock(1);
  assert.equal(store.reads.filter((n) => n === 1).length, 1, 'block 1 is still a hit');
  await cache.close();
});

test('a session write into a clean block keeps it from eviction until reported, then it is uploaded', async () => {
  const store = new MemoryStore(100);
  const { cache, map } = cacheWithMap(store, { size: 4, writeDelayMs: 0 });
  await cache.readBlock(1);
  assert.equal(map.write(1 * BS + 10, Buffer.from('session')), true, 'a clean, whole, cached block takes the write');
  assert.equal(map.isDirty(1), true);
  // Not reported yet: reading four other blocks through a 4-slot cache must not drop block 1.
  for (const n of [10, 11, 12, 13]) await cache.readBlock(n);
  assert.equal(map.slotOf(1) !== null, true, 'still in the map');
  report(map, cache);
  await cache.flush();
  assert.equal(store.blocks.get(1)?.subarray(10, 17).toString(), 'session');
  assert.equal(map.isDirty(1), false, 'clean once stored');
  assert.equal((await cache.readBlock(1)).subarray(10, 17).toString(), 'session');
});

test('a whole new block lands in a lent slot; the cache adopts it when reported, or when it meets it first', async () => {
  const store = new MemoryStore(100);
  const { cache, map } = cacheWithMap(store, { size: 8 });
  assert.equal(map.spares, 2, 'a quarter of the cache is lent at most');
  assert.equal(map.write(5 * BS, block(5)), true);
  assert.equal(map.write(6 * BS, block(0)), false, 'zeros go through the zero cache');
  assert.equal(map.write(7 * BS + 1, block(7).subarray(1)), false, 'part of an uncached block needs the rest fetched');
  // Met before the report: a read of block 6... and block 5 itself, from the session's slot.
  assert.equal(map.write(6 * BS, block(6)), true);
  assert.deepEqual(await cache.readBlock(6), block(6), 'read from the session slot, not fetched');
  assert.deepEqual(store.reads, [], 'nothing fetched');
  report(map, cache);
  assert.equal(cache.dirtyCount, 2);
  assert.equal(map.spares, 2, 'spares topped up after the report');
  await cache.flush();
  assert.deepEqual(store.blocks.get(5), block(5));
  assert.deepEqual(store.blocks.get(6), block(6));
  assert.equal(stat(cache, 'block_cache_write_misses') >= 2, true);
});

/**
 * Slots without their view (as under a runtime refusing external buffers), and the real ones the
 * map needs: uploads copy the slot instead of reading it in place, and the session may write the
 * block while it uploads.
 * @param {number} size
 */
function slotsWithoutView(size) {
  const real = SlotStores.anonymous(BS, size);
  const slots = new Proxy(real, {
    get(target, name) {
      if (name === 'dataView') return () => null;
      const value = Reflect.get(target, name);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return /** @type {const} */ ([slots, real]);
}

test('uploading a copy, a session write during an upload of the same block is uploaded after it', async () => {
  const store = new MemoryStore(100, { writeMs: 40 });
  const { cache, map } = cacheWithMap(store, { writeDelayMs: 0 }, ...slotsWithoutView(defaults.size));
  await cache.writeBlock(3, block(1));
  await sleep(10); // the upload of block(1) is under way
  assert.equal(map.write(3 * BS, block(2)), true);
  report(map, cache);
  await cache.flush();
  assert.deepEqual(store.blocks.get(3), block(2), 'the newest data is stored');
  assert.deepEqual(
    store.writes.map((w) => w.first),
    [1, 2],
  );
  // And with no report at all: the generation the upload copied is old, so the block stays dirty
  // and is uploaded again on its own.
  await cache.writeBlock(4, block(1));
  await sleep(10);
  assert.equal(map.write(4 * BS, block(3)), true);
  for (let i = 0; i < 100 && store.blocks.get(4)?.[0] !== 3; i++) await sleep(20);
  assert.deepEqual(store.blocks.get(4), block(3), 'uploaded again without being told');
  assert.equal(map.isDirty(4), false);
});

test('uploading in place, a session write during an upload of the same block goes to JS, and is uploaded after it', async () => {
  const store = new MemoryStore(100, { writeMs: 40 });
  const { cache, map } = cacheWithMap(store, { writeDelayMs: 0 });
  await viewed(cache);
  await cache.writeBlock(3, block(1));
  await sleep(10); // the upload of block(1) is under way
  assert.equal(map.write(3 * BS, block(2)), false, 'refused: the upload reads the slot');
  await cache.writeBlock(3, block(2)); // what the front end does with a refused write
  await cache.flush();
  assert.deepEqual(store.blocks.get(3), block(2), 'the newest data is stored');
  assert.deepEqual(
    store.writes.map((w) => w.first),
    [1, 2],
  );
  assert.equal(map.write(3 * BS, block(4)), true, 'the session writes the block again once stored');
  await cache.close();
});

test('the zero cache above forgets "zero" for blocks the session wrote, so an evicted block reads back its data', async () => {
  const store = new MemoryStore(100);
  const { cache, map } = cacheWithMap(store, { size: 4, writeDelayMs: 0 });
  const zeros = new ZeroCache(cache);
  assert.deepEqual(await zeros.readBlock(2), block(0));
  assert.equal(zeros.isKnownZero(2), true);
  assert.equal(map.write(2 * BS + 100, Buffer.from('data')), true, 'the cached zero block takes a session write');
  report(map, zeros);
  assert.equal(zeros.isKnownZero(2), false);
  await zeros.flush();
  for (const n of [20, 21, 22, 23]) await zeros.readBlock(n); // block 2 is evicted
  assert.equal(map.slotOf(2), null);
  assert.equal((await zeros.readBlock(2)).subarray(100, 104).toString(), 'data');
});

test('the session is held to the dirty cap, and kept out by a cache file or synchronous writes', async (t) => {
  const store = new MemoryStore(100);
  const { cache, map } = cacheWithMap(store, { size: 8, maxDirty: 2, writeDelayMs: 60000 });
  assert.equal(map.write(0, block(1)), true);
  assert.equal(map.write(BS, block(1)), true);
  assert.equal(map.write(2 * BS, block(1)), false, 'a third dirty block waits in the cache for uploads');
  assert.equal(map.write(10, Buffer.from('x')), true, 'an already dirty block takes more');
  report(map, cache);
  await cache.flush();
  assert.equal(store.blocks.size, 2);

  const sync = cacheWithMap(new MemoryStore(10), { sync: true });
  await sync.cache.readBlock(1);
  assert.equal(sync.map.write(BS, block(1)), false, "synchronous writes are each the cache's");

  const dir = await mkdtemp(join(tmpdir(), 's3b-map-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = SlotStores.createFile(join(dir, 'cache'), BS, 8, 1);
  const persistent = cacheWithMap(new MemoryStore(10), { persistent: true }, file);
  await persistent.cache.readBlock(1);
  assert.equal(persistent.map.write(BS, block(1)), false, 'a cache file orders each write itself');
  assert.deepEqual(await persistent.cache.readBlock(1), block(0), 'and the session still reads it');
});

test('a trim drops a block the session wrote; the late report of that write uploads nothing', async () => {
  const store = new MemoryStore(100);
  const { cache, map } = cacheWithMap(store, { writeDelayMs: 0 });
  assert.equal(map.write(4 * BS, block(4)), true);
  report(map, cache);
  await cache.flush();
  assert.equal(map.write(4 * BS, block(5)), true);
  const late = map.takeWritten();
  await cache.trimBlocks([4]);
  cache.noteWritten(late);
  await cache.flush();
  assert.equal(store.blocks.has(4), false, 'zeros, as the trim left it');
  assert.equal(map.slotOf(4), null);
  assert.deepEqual(await cache.readBlock(4), block(0));
});

test("the map holds each block's state: loading while fetched, uploading while stored, one upload at a time", async () => {
  const store = new MemoryStore(100, { writeMs: 40 });
  store.blocks.set(7, block(7));
  const { cache, map } = cacheWithMap(store, { writeDelayMs: 0 });
  const reading = cache.readBlock(7);
  assert.equal(map.isLoading(7), true);
  assert.equal(map.loading, 1);
  assert.equal(map.isReadable(7), false, 'not readable until fetched whole');
  await reading;
  assert.equal(map.loading, 0);
  assert.equal(map.isReadable(7), true);
  await cache.writeBlock(3, block(1));
  await sleep(10);
  assert.equal(map.isUploading(3), true);
  assert.equal(map.uploading, 1);
  assert.equal(map.beginUpload(3, Buffer.alloc(BS)), null, 'a second upload of the block is refused while one runs');
  await cache.flush();
  assert.equal(map.isUploading(3), false);
  assert.equal(map.uploading, 0);
  assert.equal(map.isDirty(3), false);
  assert.deepEqual(
    store.writes.map((w) => w.n),
    [3],
    'uploaded once',
  );
  await cache.close();
  assert.equal(map.read(3 * BS, 10), null, 'closed: the session reads nothing more');
});

/**
 * A store whose uploads take the bytes only at their end, as a slow send reads its buffer late:
 * an upload reading its slot in place would send whatever landed in it meanwhile.
 * @param {MemoryStore} store
 * @param {{ n: number, first: number, whole: boolean }[]} sent
 */
function readLate(store, sent) {
  store.writeBlock = async (n, data) => {
    await sleep(store.writeMs);
    const copy = data === null ? null : Buffer.from(data);
    sent.push({ n, first: copy?.[0] ?? 0, whole: copy === null || copy.every((b) => b === copy[0]) });
    if (copy === null) store.blocks.delete(n);
    else store.blocks.set(n, copy);
    return copy ? 'e'.repeat(32) : ZERO_ETAG;
  };
}

/**
 * Block 1 written into a cache of `size` slots and its upload under way, reading its slot in
 * place; the uploads are recorded in `sent` with the bytes they took at their end.
 * @param {number} size
 */
async function uploadingInPlace(size) {
  const store = new MemoryStore(100, { writeMs: 30 });
  /** @type {{ n: number, first: number, whole: boolean }[]} */
  const sent = [];
  readLate(store, sent);
  const { cache, map } = cacheWithMap(store, { size, writeDelayMs: 0 });
  await viewed(cache);
  await cache.writeBlock(1, block(1));
  await sleep(5);
  assert.equal(map.isPinned(1), true, 'the upload has begun, from the slot itself');
  return { store, sent, cache, map, pinned: map.slotOf(1) };
}

for (const how of ['writeBlock', 'writeBlockPart']) {
  test(`an upload reads its slot in place: a ${how} meanwhile moves the block to a copy, and the upload sends its own version whole`, async () => {
    const { store, sent, cache, map, pinned } = await uploadingInPlace(8);
    assert.equal(map.write(1 * BS, block(2)), false, 'the session sends writes of a pinned block to JS');
    if (how === 'writeBlock') await cache.writeBlock(1, block(3));
    else await cache.writeBlockPart(1, 0, block(3));
    assert.notEqual(map.slotOf(1), pinned, 'moved to a copy');
    assert.ok(map.read(1 * BS, BS)?.equals(block(3)), 'the copy has the new version');
    await cache.flush();
    assert.deepEqual(sent, [
      { n: 1, first: 1, whole: true },
      { n: 1, first: 3, whole: true },
    ]);
    assert.ok(store.blocks.get(1)?.equals(block(3)));
    // The upload's old slot is free again: six blocks (eight slots, two lent to the session) fit.
    for (const n of [10, 11, 12, 13, 14]) await cache.readBlock(n);
    for (const n of [1, 10, 11, 12, 13, 14]) assert.notEqual(map.slotOf(n), null, `block ${n} is still cached`);
    await cache.close();
  });
}

test('a write of a pinned block with no slot free to copy into waits for the upload, then writes in place', async () => {
  const { store, sent, cache, map, pinned: slot } = await uploadingInPlace(2);
  await cache.writeBlock(2, block(2)); // the other slot, dirty
  await cache.writeBlock(1, block(3));
  assert.equal(map.slotOf(1), slot, 'written in place once the upload ended');
  await cache.flush();
  assert.deepEqual(
    sent.filter((s) => s.n === 1),
    [
      { n: 1, first: 1, whole: true },
      { n: 1, first: 3, whole: true },
    ],
  );
  assert.ok(store.blocks.get(1)?.equals(block(3)) && store.blocks.get(2)?.equals(block(2)));
  await cache.close();
});
