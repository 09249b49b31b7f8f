// The block cache over an in-memory store that records its traffic: hits, eviction order,
// write-back delay and parallelism, rewrites during upload, back-pressure, sync writes,
// read-ahead, failed uploads kept dirty, flush, reload of a cache file's slots.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { ManualClock } from './helpers/manualClock.mjs';
import { cacheSettings } from './helpers/settings.mjs';

const require = createRequire(import.meta.url);
const { BlockCache } = require('../dist/layers/blockCache.js');
const { SlotStores, BlockMaps } = require('../dist/native/addon.js');
const { silentLogger } = require('../dist/util/log.js');
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

/** A path for a cache file in a directory of its own, removed when the test ends. */
function cacheFilePath(t) {
  const dir = mkdtempSync(join(tmpdir(), 's3b-cache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'cache');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ZERO_ETAG = '0'.repeat(32);
const etagOf = (data) => (data === undefined ? ZERO_ETAG : createHash('md5').update(data).digest('hex'));
const BS = 512;

/** A block store in memory that records every call and how many writes overlap. */
class RecordingStore {
  constructor(numBlocks, { writeMs = 5, readMs = 2 } = {}) {
    Object.assign(this, { blockSize: BS, numBlocks, writeMs, readMs });
    this.blocks = new Map();
    this.reads = [];
    this.writes = [];
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.readsInFlight = 0;
    this.maxReadsInFlight = 0;
    this.failWrites = 0;
    this.conditionalReads = [];
  }
  async readBlock(n) {
    return (await this.readBlockTagged(n)).data;
  }
  /** As the S3 backend: the data with its stored object's ETag (zeros when absent). */
  async readBlockTagged(n) {
    this.reads.push(n);
    this.readsInFlight++;
    this.maxReadsInFlight = Math.max(this.maxReadsInFlight, this.readsInFlight);
    await sleep(this.readMs);
    this.readsInFlight--;
    const data = this.blocks.get(n);
    return { data: Buffer.from(data ?? Buffer.alloc(BS)), etag: etagOf(data) };
  }
  /** null when the stored object still has this ETag (304, or 404 for the zero ETag). */
  async readBlockIfChanged(n, etag) {
    this.conditionalReads.push(n);
    await sleep(this.readMs);
    const data = this.blocks.get(n);
    if (etagOf(data) === etag) return null;
    return { data: Buffer.from(data ?? Buffer.alloc(BS)), etag: etagOf(data) };
  }
  /** A plain disk: the ETag of stored data is its MD5. */
  async storesAs(n, data, etag) {
    return etagOf(data.every((b) => b === 0) ? undefined : data) === etag;
  }
  async writeBlock(n, data) {
    const copy = data === null ? null : Buffer.from(data);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await sleep(this.writeMs);
    this.inFlight--;
    if (this.failWrites > 0) {
      this.failWrites--;
      throw new Error('injected upload failure');
    }
    this.writes.push({ n, at: Date.now(), first: copy?.[0] ?? 0 });
    if (copy === null) this.blocks.delete(n);
    else this.blocks.set(n, copy);
    return etagOf(copy ?? undefined);
  }
  async flush() {}
  async listNonZero() {}
  async close() {}
}

const defaults = cacheSettings({ persistent: false });
const cacheOver = (store, opts = {}) => {
  const o = { ...defaults, ...opts };
  return new BlockCache(store, SlotStores.anonymous(BS, o.size), o, silentLogger);
};
const block = (byte) => Buffer.alloc(BS, byte);
// Upstream's lines and ours after them, as the stats file shows them.
const stat = (cache, name) => Object.fromEntries([...cache.statsLines(), ...cache.extraStatsLines()])[name];

test('reads: a miss fetches once, hits cost nothing; LRU eviction of clean blocks', async () => {
  const store = new RecordingStore(100);
  const cache = cacheOver(store, { size: 3 });
  for (const n of [1, 2, 3, 1]) await cache.readBlock(n); // 1 is now the most recent
  assert.deepEqual(store.reads, [1, 2, 3]);
  await cache.readBlock(4); // evicts 2, the least recently used
  await cache.readBlock(1);
  await cache.readBlock(3);
  assert.deepEqual(store.reads, [1, 2, 3, 4]);
  await cache.readBlock(2);
  assert.deepEqual(store.reads, [1, 2, 3, 4, 2]);
  assert.equal(stat(cache, 'block_cache_read_hits'), 3);
  assert.equal(stat(cache, 'block_cache_read_misses'), 5);
  assert.equal(stat(cache, 'block_cache_current_size'), '3 blocks');
  await cache.close();
});

test('protected low blocks are evicted last', async () => {
  const store = new RecordingStore(100);
  const cache = cacheOver(store, { size: 3, numProtected: 2 });
  for (const n of [0, 1, 50, 51, 52]) await cache.readBlock(n);
  store.reads.length = 0;
  await cache.readBlock(0);
  await cache.readBlock(1);
  assert.deepEqual(store.reads, [], 'blocks 0 and 1 survived newer unprotected reads');
  await cache.close();
});

test('a reader looping over more blocks than the cache holds: most of them stay in place, until the reads move on', async () => {
  const store = new RecordingStore(2000, { readMs: 0 });
  const cache = cacheOver(store, { size: 256, readAhead: 1 });
  // Blocks of the pass fetched during it (read-ahead runs past its end too).
  const pass = async (first, count) => {
    store.reads.length = 0;
    for (let n = first; n < first + count; n++) await cache.readBlock(n);
    return new Set(store.reads.filter((n) => n >= first && n < first + count)).size;
  };
  // Plain LRU would fetch all 300 on every pass.
  assert.equal(await pass(0, 300), 300, 'the first pass fetches every block');
  await pass(0, 300); // the second refaults: the hold begins
  assert.equal(stat(cache, 'block_cache_loop_holds'), 1);
  const held = Number.parseInt(stat(cache, 'block_cache_held'), 10);
  assert.ok(held >= 128 && held <= 256 - 48, `held ${held}`);
  const third = await pass(0, 300);
  // Blocks read ahead past the pass's end take cycling slots too: a few more misses than the rest.
  assert.ok(third < 150 && third <= 300 - held + 32, `third pass fetched ${third} of 300 with ${held} held`);
  assert.ok((await cache.readBlock(299)).equals(Buffer.alloc(BS)), 'data read back as stored');
  // A new, smaller working set: no refaults, so the hold ends and LRU keeps all of it.
  assert.equal(await pass(1000, 200), 200);
  assert.equal(stat(cache, 'block_cache_held'), '0 blocks', 'released');
  assert.equal(await pass(1000, 200), 0, 'the new set stays cached whole');
  assert.equal(stat(cache, 'block_cache_loop_holds'), 1);
  await cache.close();
});

test('writes return at once and are uploaded after the write delay', async () => {
  const store = new RecordingStore(100);
  // The cache's time is driven by hand: "after the delay, not before" without reading the wall clock.
  const clock = new ManualClock();
  const cache = cacheOver(store, { writeDelayMs: 150, clock });
  const uploads = () => store.inFlight + store.writes.length;
  await cache.writeBlock(7, block(1));
  assert.equal(uploads(), 0, 'write returned before any upload');
  assert.ok((await cache.readBlock(7)).equals(block(1)), 'dirty data is readable');
  assert.deepEqual(store.reads, [], 'without fetching');
  await clock.advance(149);
  assert.equal(uploads(), 0, 'not uploaded before the write delay is up');
  await clock.advance(1);
  assert.equal(uploads(), 1, 'uploaded as soon as it is');
  await cache.flush();
  assert.equal(store.writes.length, 1);
  await cache.close();
});

test('uploads run in parallel up to --blockCacheThreads', async () => {
  const store = new RecordingStore(100, { writeMs: 30 });
  const cache = cacheOver(store, { size: 40, threads: 3, writeDelayMs: 0 });
  for (let n = 0; n < 30; n++) await cache.writeBlock(n, block(n + 1));
  await cache.flush();
  assert.equal(store.writes.length, 30);
  assert.equal(store.maxInFlight, 3);
  await cache.close();
});

test('more than 64 uploads run only while a flush waits on a slow store (its round trip timed on quiet uploads)', async () => {
  const run = async (writeMs, { flush }) => {
    const store = new RecordingStore(1000, { writeMs });
    const cache = cacheOver(store, { size: 1000, threads: 96, writeDelayMs: flush ? 60000 : 0 });
    // A few uploads on their own: what the round trip is timed on.
    for (let n = 0; n < 4; n++) {
      await cache.writeBlock(n, block(1));
      await cache.flush();
    }
    store.maxInFlight = 0;
    for (let n = 4; n < 400; n++) await cache.writeBlock(n, block((n % 200) + 1));
    if (flush) await cache.flush();
    else while (cache.dirtyCount > 0) await sleep(5);
    assert.equal(store.blocks.size, 400, 'every block stored');
    await cache.close();
    return store.maxInFlight;
  };
  assert.equal(await run(15, { flush: true }), 96, 'a flush on a slow store: every thread');
  assert.equal(await run(0, { flush: true }), 64, 'a flush on a quick store: 64');
  assert.equal(await run(15, { flush: false }), 64, 'write-back nobody waits for, on a slow store: 64');
});

test('once the upload slots are full, uploads start again in batches, not one per completion', async () => {
  // Each upload waits until the test lets it end.
  const store = new RecordingStore(100);
  const gates = [];
  store.writeBlock = async function (n, data) {
    this.inFlight++;
    await new Promise((resolve) => gates.push(resolve));
    this.inFlight--;
    this.blocks.set(n, Buffer.from(data));
    return etagOf(data);
  };
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  // 16 slots: a batch of 4, a quarter (64 or more, the default, give 16: one digest task's lanes).
  const cache = cacheOver(store, { size: 40, threads: 16, writeDelayMs: 0 });
  for (let n = 0; n < 30; n++) await cache.writeBlock(n, block(n + 1));
  await settle();
  assert.equal(store.inFlight, 16, 'every slot taken');
  for (let free = 1; free < 4; free++) {
    gates.shift()();
    await settle();
    assert.equal(store.inFlight, 16 - free, `${free} slots free are not a batch: nothing starts`);
  }
  gates.shift()();
  await settle();
  assert.equal(store.inFlight, 16, 'four free: all four start together');
  const flushed = cache.flush();
  while (gates.length > 0) {
    gates.shift()();
    await settle();
  }
  await flushed;
  assert.equal(store.blocks.size, 30, 'every block stored');
  await cache.close();
});

test('a block rewritten during its upload is uploaded again, once, with the new data', async () => {
  const store = new RecordingStore(10, { writeMs: 80 });
  const cache = cacheOver(store, { writeDelayMs: 0 });
  await cache.writeBlock(3, block(1));
  await sleep(20); // the upload of version 1 is under way
  await cache.writeBlock(3, block(2));
  await cache.flush();
  await sleep(200);
  assert.deepEqual(
    store.writes.map((w) => [w.n, w.first]),
    [
      [3, 1],
      [3, 2],
    ],
  );
  assert.ok(store.blocks.get(3).equals(block(2)));
  await cache.close();
});

test('--blockCacheMaxDirty makes writers wait for uploads', async () => {
  const store = new RecordingStore(100, { writeMs: 40 });
  const cache = cacheOver(store, { size: 20, maxDirty: 2, writeDelayMs: 10000 });
  await cache.writeBlock(0, block(1));
  await cache.writeBlock(1, block(1));
  const started = Date.now();
  await cache.writeBlock(2, block(1)); // must wait for an upload despite the long delay
  assert.ok(Date.now() - started >= 35, `third write waited ${Date.now() - started} ms`);
  assert.ok(store.writes.length >= 1);
  assert.ok(cache.dirtyCount <= 2);
  await cache.close();
});

test('--blockCacheSync returns only once uploaded', async () => {
  const store = new RecordingStore(10, { writeMs: 30 });
  const cache = cacheOver(store, { sync: true, writeDelayMs: 10000 });
  await cache.writeBlock(4, block(9));
  assert.equal(store.writes.length, 1);
  assert.ok(store.blocks.get(4).equals(block(9)));
  await cache.close();
});

test('read-ahead fetches the next blocks in parallel after sequential reads', async () => {
  const store = new RecordingStore(100, { readMs: 30 });
  const cache = cacheOver(store, { size: 20, readAhead: 4, readAheadTrigger: 2 });
  await cache.readBlock(10);
  assert.deepEqual(store.reads, [10]);
  await cache.readBlock(11); // second sequential read: 12..15 requested at once
  await sleep(5);
  assert.deepEqual(store.reads.slice(0, 6), [10, 11, 12, 13, 14, 15]);
  assert.ok(store.maxReadsInFlight >= 4, `read-ahead parallelism ${store.maxReadsInFlight}`);
  const before = store.reads.length;
  await cache.readBlock(12); // a hit (or joins the in-flight fetch), and the window moves on
  await cache.readBlock(13);
  assert.ok(
    store.reads.slice(before).every((n) => n >= 16),
    'no block fetched twice',
  );
  await cache.close();
});

test("warm fetches a block before any read, once; a read meanwhile joins that fetch; the view over the slots waits for a read; a failed warm-up is the next read's to retry", async () => {
  const store = new RecordingStore(100, { readMs: 20 });
  store.blocks.set(0, block(7));
  store.blocks.set(1, block(8));
  const intos = [];
  let failBlock1 = true;
  const tagged = store.readBlockTagged.bind(store);
  store.readBlockTagged = async (n, into) => {
    intos.push([n, into === undefined ? 'none' : into.buffer.byteLength === BS * 8 ? 'slot' : 'buffer']);
    if (n === 1 && failBlock1) {
      failBlock1 = false;
      store.reads.push(n);
      throw new Error('injected read failure');
    }
    return tagged(n, into);
  };
  const cache = cacheOver(store, { size: 8 });
  cache.warm([0]);
  assert.deepEqual(store.reads, [0], 'fetched at once');
  assert.ok((await cache.readBlock(0)).equals(block(7)));
  cache.warm([0]);
  assert.ok((await cache.readBlock(0)).equals(block(7)));
  assert.deepEqual(store.reads, [0], 'one fetch: the read joined it, the second warm-up found it cached');
  assert.equal(stat(cache, 'block_cache_read_misses'), 0);
  // A fetch is handed its slot once the view over all 8 exists; before, a demand fetch gets no
  // buffer, a warm-up or read-ahead one a buffer of its own.
  await new Promise((resolve) => setImmediate(resolve));
  await cache.readBlock(5);
  await new Promise((resolve) => setImmediate(resolve));
  await cache.readBlock(6);
  assert.deepEqual(
    intos,
    [
      [0, 'buffer'],
      [5, 'none'],
      [6, 'slot'],
    ],
    "the first read's fetch made the view, not the warm-up's",
  );
  cache.warm([1]);
  await sleep(5);
  assert.ok((await cache.readBlock(1)).equals(block(8)), 'read again after the failed warm-up');
  assert.deepEqual(store.reads.filter((n) => n === 1).length, 2);
  await cache.close();
});

test('fetches land in the slot they fill: every block read back is its own, however the slots go round', async () => {
  const content = (n) => Buffer.alloc(BS, n % 251);
  const memories = new Set();
  let landed = 0;
  const store = new RecordingStore(1000, { readMs: 1 });
  // As the S3 backend does: the body read into the caller's buffer, returned as the data.
  store.readBlockTagged = async (n, into) => {
    store.reads.push(n);
    await sleep(n % 3);
    if (into === undefined) return { data: content(n), etag: ZERO_ETAG };
    memories.add(into.buffer);
    assert.equal(into.length, BS);
    assert.equal(into.byteOffset % BS, 0, 'a whole slot');
    landed++;
    content(n).copy(into);
    return { data: into, etag: ZERO_ETAG };
  };
  const cache = cacheOver(store, { size: 64, readAhead: 4, readAheadTrigger: 2 });
  // The first fetch copies: the view over the slots is made after it, off the mount's first read.
  assert.ok((await cache.readBlock(999)).equals(content(999)));
  assert.equal(landed, 0, 'the first fetch is copied into its slot');
  await new Promise((resolve) => setImmediate(resolve));
  for (let n = 0; n < 300; n++) assert.ok((await cache.readBlock(n)).equals(content(n)), `block ${n}`);
  for (let n = 0; n < 300; n += 7) assert.ok((await cache.readBlock(n)).equals(content(n)), `block ${n} again`);
  // Parts, as the session's misses come: a hit on the least recently used block drives
  // read-ahead, which must not take that block's slot from under the copy.
  const target = Buffer.alloc(100);
  for (let pass = 0; pass < 6; pass++) {
    for (let n = 150; n < 300; n++) {
      await cache.readBlockPart(n, 300, target);
      assert.ok(target.equals(content(n).subarray(300, 400)), `part of block ${n}`);
    }
  }
  // Those that found every slot busy read through, into no slot.
  assert.ok(landed > store.reads.length / 2, `${landed} of ${store.reads.length} fetches into a slot`);
  assert.equal(memories.size, 1, 'all of them views of the one slot memory');
  await cache.close();
});

test('with a cache file, read-ahead fetches into reused buffers, then copies into the slot', async (t) => {
  const content = (n) => Buffer.alloc(BS, n % 251);
  const intoSeen = new Set();
  const store = new RecordingStore(1000, { readMs: 1 });
  store.readBlockTagged = async (n, into) => {
    store.reads.push(n);
    await sleep(n % 3);
    if (into === undefined) return { data: content(n), etag: ZERO_ETAG };
    intoSeen.add(into);
    content(n).copy(into);
    return { data: into, etag: ZERO_ETAG };
  };
  const slots = SlotStores.createFile(cacheFilePath(t), BS, 64, 0);
  assert.equal(slots.dataView(), null, 'no view of a cache file');
  const cache = new BlockCache(store, slots, { ...defaults, size: 64, readAhead: 4, readAheadTrigger: 2, persistent: true }, silentLogger);
  for (let n = 0; n < 300; n++) assert.ok((await cache.readBlock(n)).equals(content(n)), `block ${n}`);
  for (let n = 0; n < 300; n += 7) assert.ok((await cache.readBlock(n)).equals(content(n)), `block ${n} again`);
  assert.ok(intoSeen.size > 0 && intoSeen.size < 64, `${intoSeen.size} buffers served the read-ahead of ${store.reads.length} fetches`);
  await cache.close();
});

test('read-ahead never evicts dirty blocks and stops when there is no room', async () => {
  const store = new RecordingStore(100);
  const cache = cacheOver(store, { size: 4, readAhead: 8, readAheadTrigger: 1, writeDelayMs: 10000 });
  for (const n of [50, 51, 52]) await cache.writeBlock(n, block(5));
  await cache.readBlock(0);
  await sleep(20);
  assert.deepEqual(store.reads, [0], 'one free slot, taken by the read itself');
  for (const n of [50, 51, 52]) assert.ok((await cache.readBlock(n)).equals(block(5)));
  await cache.close();
});

test('a failed upload stays dirty and is retried; flush reports the failure', async () => {
  const store = new RecordingStore(10);
  const cache = cacheOver(store, { writeDelayMs: 0 });
  store.failWrites = 1;
  await cache.writeBlock(2, block(3));
  await assert.rejects(cache.flush(), /injected upload failure/);
  assert.equal(cache.dirtyCount, 1, 'kept dirty');
  assert.equal(stat(cache, 'block_cache_upload_errors'), 1, 'counted in the stats');
  await cache.flush(); // the retry (after its backoff) succeeds
  assert.ok(store.blocks.get(2).equals(block(3)));
  assert.equal(cache.dirtyCount, 0);
  await cache.close();
});

test('a flush is settled by the versions it saw: a block it saw stored, written again and failing, does not fail it', async () => {
  class SlowBlockTwo extends RecordingStore {
    async writeBlock(n, data) {
      if (n === 2) await sleep(400);
      return super.writeBlock(n, data);
    }
  }
  const store = new SlowBlockTwo(10, { writeMs: 5 });
  const cache = cacheOver(store, { writeDelayMs: 0 });
  await cache.writeBlock(1, block(1));
  await cache.writeBlock(2, block(2));
  const flushed = cache.flush(); // waits for block 1 (quick) and block 2 (slow)
  let settled;
  flushed.then(
    () => (settled = 'resolved'),
    (err) => (settled = err.message),
  );
  await sleep(100);
  assert.ok(store.blocks.get(1).equals(block(1)), 'block 1 stored while block 2 still uploads');
  store.failWrites = 1;
  await cache.writeBlock(1, block(3)); // its upload (quicker than block 2's) fails
  await sleep(50);
  assert.equal(stat(cache, 'block_cache_upload_errors'), 1, 'the new version of block 1 failed');
  assert.equal(settled, undefined, 'the flush still waits for block 2');
  await flushed;
  assert.equal(settled, 'resolved');
  assert.ok(store.blocks.get(2).equals(block(2)));
  await cache.flush(); // block 1's new version, retried
  assert.ok(store.blocks.get(1).equals(block(3)));
  await cache.close();
});

test('a flush of thousands of dirty blocks stores each once and resolves after the last', async () => {
  const store = new RecordingStore(5000, { writeMs: 0 });
  const cache = cacheOver(store, { size: 5000, writeDelayMs: 60000, threads: 64 });
  for (let n = 0; n < 5000; n++) await cache.writeBlock(n, block((n % 250) + 1));
  assert.equal(store.writes.length, 0, 'nothing uploaded before the delay');
  await cache.flush();
  assert.equal(store.writes.length, 5000);
  assert.equal(new Set(store.writes.map((w) => w.n)).size, 5000, 'each block once');
  assert.equal(cache.dirtyCount, 0);
  await cache.close();
});

test('writeBackTrims: a trim of up to that many blocks (and a quarter of the slots) is written back as zeros; a bigger one goes down at once', async () => {
  class TrimmingStore extends RecordingStore {
    trims = [];
    async trimBlocks(ns) {
      this.trims.push([...ns]);
      for (const n of ns) this.blocks.delete(n);
    }
  }
  const store = new TrimmingStore(64);
  const cache = cacheOver(store, { size: 16, writeDelayMs: 60000, writeBackTrims: 16 });
  for (const n of [1, 2, 3, 4, 5, 6, 7]) store.blocks.set(n, block(n));
  await cache.trimBlocks([1, 2, 3, 4]); // a quarter of 16 slots: written back
  assert.deepEqual(store.trims, [], 'no trim sent down');
  assert.equal(cache.dirtyCount, 4, 'four dirty blocks of zeros');
  for (const n of [1, 4])
    assert.ok(
      (await cache.readBlock(n)).every((b) => b === 0),
      `block ${n} reads as zeros`,
    );
  assert.ok(store.blocks.has(1), 'still stored until uploaded');
  await cache.trimBlocks([5, 6, 7, 8, 9]); // more than a quarter of the slots: down at once
  assert.deepEqual(store.trims, [[5, 6, 7, 8, 9]]);
  await cache.flush();
  assert.deepEqual(store.writes.map((w) => w.n).sort(), [1, 2, 3, 4], 'the written-back trims are stored as zero writes');
  for (const n of [1, 2, 3, 4]) assert.ok(!store.blocks.has(n), `block ${n} deleted`);
  await cache.close();
  const sync = cacheOver(new TrimmingStore(64), { size: 16, sync: true, writeBackTrims: 16 });
  await sync.trimBlocks([1]);
  assert.equal(sync.dirtyCount, 0, 'synchronous writes: every trim goes down');
  await sync.close();
});

test('zero writes upload as zeros (null); idle clean blocks expire with --blockCacheTimeout', async () => {
  const store = new RecordingStore(10);
  store.blocks.set(1, block(1));
  const cache = cacheOver(store, { writeDelayMs: 0, timeoutMs: 100 });
  await cache.writeBlock(1, null);
  await cache.flush();
  assert.equal(store.blocks.has(1), false);
  await cache.readBlock(5);
  assert.equal(stat(cache, 'block_cache_current_size'), '2 blocks');
  await sleep(1300);
  assert.equal(stat(cache, 'block_cache_current_size'), '0 blocks');
  await cache.close();
});

test('partial writes: no fetch when writes fill the block; one fetch merges the rest otherwise', async () => {
  const store = new RecordingStore(10);
  store.blocks.set(2, block(9));
  const cache = cacheOver(store, { writeDelayMs: 100 });
  await cache.writeBlockPart(1, 0, Buffer.alloc(256, 1));
  await cache.writeBlockPart(1, 256, Buffer.alloc(256, 2));
  await cache.flush();
  assert.deepEqual(store.reads, [], 'two halves made a whole block without reading it');
  assert.ok(store.blocks.get(1).equals(Buffer.concat([Buffer.alloc(256, 1), Buffer.alloc(256, 2)])));

  await cache.writeBlockPart(2, 100, Buffer.alloc(10, 5));
  const read = await cache.readBlock(2);
  assert.deepEqual(store.reads, [2], 'the rest fetched once, on the read');
  const want = block(9);
  want.fill(5, 100, 110);
  assert.ok(read.equals(want), 'stored bytes around the written part');
  await cache.writeBlockPart(3, 500, Buffer.alloc(12, 7));
  await cache.flush();
  assert.deepEqual(store.reads, [2, 3], 'completed before upload');
  const three = Buffer.alloc(BS);
  three.fill(7, 500);
  assert.ok(store.blocks.get(3).equals(three));
  await cache.close();
});

test('zeros written over part of a block S3 lacks send no DELETE; over a stored one they do', async () => {
  const store = new RecordingStore(10);
  store.blocks.set(2, Buffer.concat([Buffer.alloc(100, 3), Buffer.alloc(BS - 100)]));
  const cache = cacheOver(store, { writeDelayMs: 0 });
  const written = () => store.writes.map((w) => w.n);
  // Never stored: the fetch that completes it finds no object, and zeros need none.
  await cache.writeBlockPart(1, 0, Buffer.alloc(100));
  await cache.flush();
  assert.deepEqual(store.reads, [1]);
  assert.deepEqual(written(), [], 'no DELETE for a block S3 lacks');
  assert.equal(stat(cache, 'block_cache_zero_uploads_skipped'), 1);
  // Stored: its only data zeroed, the object goes.
  await cache.writeBlockPart(2, 0, Buffer.alloc(100));
  await cache.flush();
  assert.deepEqual(written(), [2]);
  assert.equal(store.blocks.has(2), false);
  // Read while absent, then data stored, then zeroed again: that DELETE goes out too.
  await cache.readBlock(5);
  await cache.writeBlockPart(5, 0, Buffer.alloc(10, 1));
  await cache.flush();
  await cache.writeBlockPart(5, 0, Buffer.alloc(10));
  await cache.flush();
  assert.deepEqual(written(), [2, 5, 5]);
  assert.equal(store.blocks.has(5), false);
  // Deleted by us: zeros over it again cost nothing.
  await cache.writeBlockPart(5, 20, Buffer.alloc(10));
  await cache.flush();
  assert.deepEqual(written(), [2, 5, 5]);
  assert.equal(stat(cache, 'block_cache_zero_uploads_skipped'), 2);
  // A DELETE that failed leaves the object's fate unknown: the next zeros are sent.
  await cache.writeBlockPart(6, 0, Buffer.alloc(10, 1));
  await cache.flush();
  store.failWrites = 1;
  await cache.writeBlockPart(6, 0, Buffer.alloc(10));
  await assert.rejects(cache.flush());
  await cache.flush();
  assert.equal(store.blocks.has(6), false, 'deleted by the retry');
  await cache.close();
});

test('a block the writes fill while its upload fetches the rest keeps every written byte (the fetch is older)', async () => {
  // mkfs writes 1 KiB pieces into 4 KiB blocks: the first piece's upload fetched the rest, the
  // other three pieces filled the block meanwhile, and the fetch then overwrote them all.
  for (const whole of [false, true]) {
    const store = new RecordingStore(10, { readMs: 40 });
    store.blocks.set(1, block(9)); // what the store holds before: must not come back
    const cache = cacheOver(store, { writeDelayMs: 0 });
    await cache.writeBlockPart(1, 0, Buffer.alloc(BS / 4, 1));
    await sleep(5);
    assert.deepEqual(store.reads, [1], 'the upload is fetching the rest');
    if (whole) await cache.writeBlock(1, block(3));
    else for (let q = 1; q < 4; q++) await cache.writeBlockPart(1, (q * BS) / 4, Buffer.alloc(BS / 4, 1 + q));
    const want = whole ? block(3) : Buffer.concat([1, 2, 3, 4].map((v) => Buffer.alloc(BS / 4, v)));
    await cache.flush();
    assert.ok((await cache.readBlock(1)).equals(want), `${whole ? 'a whole-block' : 'piecewise'} rewrite reads back`);
    assert.ok(store.blocks.get(1).equals(want), `${whole ? 'a whole-block' : 'piecewise'} rewrite is what is stored`);
    await cache.close();
  }
});

test('a trim waits for the fetch that completes a partly written block: the slot it frees is never written by that fetch', async () => {
  // A read of a partly written block fetches the rest; a trim of the block landing meanwhile
  // used to free the slot at once, and the fetch then wrote its bytes into whatever block
  // had taken the slot since.
  const store = new RecordingStore(10, { readMs: 40 });
  store.blocks.set(1, block(9));
  const cache = cacheOver(store, { size: 1, writeDelayMs: 60000 });
  await cache.writeBlockPart(1, 0, Buffer.alloc(BS / 4, 1));
  const reading = cache.readBlock(1); // fetches the rest (40 ms)
  await sleep(5);
  const trimmed = cache.trimBlocks([1]);
  const writing = trimmed.then(() => cache.writeBlock(2, block(2))); // takes the one slot once free
  const first = await reading;
  assert.ok(
    first.equals(Buffer.concat([Buffer.alloc(BS / 4, 1), Buffer.alloc((3 * BS) / 4, 9)])),
    'the read got the written quarter and the stored rest',
  );
  await writing;
  await sleep(50); // any late copy of the fetch would have landed by now
  assert.ok((await cache.readBlock(2)).equals(block(2)), 'block 2 holds only its own data');
  assert.ok((await cache.readBlock(1)).equals(block(0)), 'block 1 reads as the trim left it');
  await cache.close();
});

test("readBlockPart copies just the range out of a cached block, into the caller's buffer", async () => {
  const store = new RecordingStore(10);
  const data = Buffer.from(Array.from({ length: BS }, (_, i) => i & 0xff));
  store.blocks.set(4, data);
  const cache = cacheOver(store);
  const readPart = async (n, offset, length) => {
    const target = Buffer.alloc(length, 0xee);
    await cache.readBlockPart(n, offset, target);
    return target;
  };
  assert.ok((await readPart(4, 10, 20)).equals(data.subarray(10, 30)), 'a miss fetches and copies the range');
  assert.ok((await readPart(4, 500, 12)).equals(data.subarray(500)), 'a hit copies from the slot');
  assert.deepEqual(store.reads, [4]);
  await cache.writeBlockPart(5, 0, Buffer.alloc(8, 3));
  assert.ok((await readPart(5, 4, 8)).equals(Buffer.from([3, 3, 3, 3, 0, 0, 0, 0])), 'a partly written block is completed first');
  await cache.close();
});

test('reads inside one block count once towards the read-ahead trigger', async () => {
  const store = new RecordingStore(100);
  const cache = cacheOver(store, { size: 20, readAhead: 2, readAheadTrigger: 2 });
  await cache.readBlockPart(30, 0, Buffer.alloc(100));
  await cache.readBlockPart(30, 100, Buffer.alloc(100)); // same block: not a reset
  await cache.readBlockPart(31, 0, Buffer.alloc(100));
  await sleep(10);
  assert.deepEqual(store.reads, [30, 31, 32, 33]);
  await cache.close();
});

test('write-behind: a block a sequential writer moved past uploads at once, the others wait out the delay', async () => {
  const store = new RecordingStore(100);
  const cache = cacheOver(store, { size: 16, writeDelayMs: 60000 });
  await cache.writeBlock(10, block(1));
  await cache.writeBlockPart(11, 0, Buffer.alloc(BS / 2, 2)); // the writer moves on: 10 goes now
  await cache.writeBlockPart(11, BS / 2, Buffer.alloc(BS / 2, 2)); // same block: nothing new
  await cache.writeBlock(20, block(3)); // a jump: 11 is not "moved past" in sequence
  await sleep(50);
  assert.deepEqual(
    store.writes.map((w) => w.n),
    [10],
    'only the block passed in sequence',
  );
  assert.equal(cache.dirtyCount, 2);
  await cache.flush();
  assert.deepEqual(
    store.writes.map((w) => w.n).sort((a, b) => a - b),
    [10, 11, 20],
  );
  await cache.close();
});

test('a long sequential write, once stored, goes before the blocks used again and again; writes in no sequence do not', async () => {
  for (const sequential of [true, false]) {
    const store = new RecordingStore(100, { writeMs: 1 });
    const cache = cacheOver(store, { size: 8, writeDelayMs: 0 });
    for (const n of [0, 50, 0, 50]) await cache.readBlock(n); // a filesystem's metadata
    const stream = Array.from({ length: 20 }, (_, i) => 60 + i * (sequential ? 1 : 2));
    for (const n of stream) {
      await cache.writeBlock(n, block(n));
      await cache.flush();
    }
    store.reads.length = 0;
    await cache.readBlock(0);
    await cache.readBlock(50);
    if (sequential) assert.deepEqual(store.reads, [], 'blocks 0 and 50 stayed');
    else assert.deepEqual(store.reads, [0, 50], 'plain LRU: the writes pushed them out');
    store.reads.length = 0;
    await cache.readBlock(stream.at(-1));
    assert.deepEqual(store.reads, [], 'the last block written is still there (nothing needed its slot)');
    await cache.close();
  }
});

/** Fails instead of hanging when `promise` does not settle within `ms`. */
const within = (ms, promise, what) => Promise.race([promise, sleep(ms).then(() => assert.fail(`${what} still waiting after ${ms} ms`))]);

test('a writer waiting for a slot gets one when fetches in progress finish (nothing dirty to upload)', async () => {
  const store = new RecordingStore(100, { readMs: 30 });
  const cache = cacheOver(store, { size: 2 });
  const reads = [cache.readBlock(1), cache.readBlock(2)]; // both slots busy loading
  const write = cache.writeBlock(7, block(7)); // no free, clean or dirty slot: it must wait
  await within(1000, write, 'the writer');
  await Promise.all(reads);
  await cache.flush();
  assert.ok(store.blocks.get(7).equals(block(7)));
  await cache.close();
});

test('writers and readers racing for two slots: every block ends with its last write', async () => {
  const store = new RecordingStore(64, { readMs: 1, writeMs: 1 });
  const cache = cacheOver(store, { size: 2, writeDelayMs: 0, threads: 2 });
  // Operations on one block run in order (as one writer's would); different blocks race.
  const chains = new Map();
  const expected = new Map();
  const after = (n, op) => chains.set(n, (chains.get(n) ?? Promise.resolve()).then(op));
  for (let i = 0; i < 400; i++) {
    const n = i % 13;
    const value = i & 0xff;
    if (i % 3 === 0) after(n, () => cache.readBlock(n));
    else {
      expected.set(n, value);
      after(n, () => (i % 2 ? cache.writeBlock(n, block(value)) : cache.writeBlockPart(n, 0, Buffer.alloc(BS, value))));
    }
  }
  await within(10000, Promise.all(chains.values()), 'the operations');
  await cache.flush();
  for (const [n, value] of expected) {
    assert.ok((await cache.readBlock(n)).equals(block(value)), `block ${n} reads back its last write`);
    assert.ok(store.blocks.get(n).equals(block(value)), `block ${n} is stored with its last write`);
  }
  await cache.close();
});

test('a write and a read of another block in the same tick: the read cannot evict the block being written', async () => {
  const store = new RecordingStore(10);
  store.blocks.set(5, block(5));
  const cache = cacheOver(store, { size: 4, writeDelayMs: 10000 });
  for (const n of [0, 1, 2, 3]) await cache.readBlock(n); // all slots clean; 0 is the LRU
  const write = cache.writeBlock(0, block(9));
  const read = cache.readBlock(5); // needs a slot: must not take the one the write was given
  assert.ok((await read).equals(block(5)));
  await write;
  assert.ok((await cache.readBlock(0)).equals(block(9)), 'block 0 reads back what was written');
  await cache.flush();
  assert.ok(store.blocks.get(0).equals(block(9)), 'block 0 is stored as written');
  await cache.close();
});

test("cache memory is mapped in shortly after the first block comes in (not a warm-up's), in batches, up to 256 MiB; a cache file is left alone", async () => {
  const recording = (numSlots, blockSize) => {
    const slots = SlotStores.anonymous(blockSize, numSlots);
    const calls = [];
    const prefault = slots.prefault.bind(slots);
    // The map is made over the real store (a native method cannot take the proxy).
    return {
      slots: new Proxy(slots, {
        get: (t, k) =>
          k === 'prefault' ? (first, count) => (calls.push([first, count]), prefault(first, count)) : (t[k]?.bind?.(t) ?? t[k]),
      }),
      calls,
      map: new BlockMaps(slots),
    };
  };
  const mappedRange = async (calls) => {
    // Batches chain one after another: wait until no new one has started for a while.
    for (let seen = -1; seen !== calls.length;) {
      seen = calls.length;
      await sleep(150);
    }
    let end = 0;
    for (const [first, count] of calls) {
      assert.equal(first, end, 'batches follow each other without gaps or overlaps');
      assert.ok(count > 0 && count <= 64, `a batch of ${count} slots keeps the libuv pool free for others`);
      end += count;
    }
    return end;
  };
  const small = recording(300, BS);
  const a = new BlockCache(new RecordingStore(1000), small.slots, { ...defaults, size: 300, map: small.map }, silentLogger);
  await sleep(50);
  assert.deepEqual(small.calls, [], 'an unused cache maps nothing in');
  a.warm([0]);
  await a.readBlock(0); // joins the warm-up's fetch: no read of its own
  await sleep(100);
  assert.deepEqual(small.calls, [], 'nor one whose only fetch was a warm-up');
  const first = a.readBlock(7);
  assert.deepEqual(small.calls, [], 'not while the first read is under way (it would share the cores)');
  await first;
  assert.equal(await mappedRange(small.calls), 300, 'a small cache is mapped in whole');
  await a.close();
  const lending = recording(300, BS);
  const d = new BlockCache(
    new RecordingStore(1000),
    lending.slots,
    { ...defaults, size: 300, session: true, map: lending.map },
    silentLogger,
  );
  await sleep(50);
  assert.deepEqual(lending.calls, [], 'nor the slots lent to the session at mount');
  await d.readBlock(7);
  assert.equal(await mappedRange(lending.calls), 300);
  await d.close();
  // 1 MiB blocks: 256 of the 400 slots (256 MiB) are mapped in, the rest as they are used.
  const big = recording(400, 1024 * 1024);
  const store = Object.assign(new RecordingStore(1000), { blockSize: 1024 * 1024 });
  const b = new BlockCache(store, big.slots, { ...defaults, size: 400, map: big.map }, silentLogger);
  await b.writeBlock(3, Buffer.alloc(1024 * 1024, 1));
  assert.equal(await mappedRange(big.calls), 256);
  await b.close();
  const file = recording(300, BS);
  const c = new BlockCache(new RecordingStore(1000), file.slots, { ...defaults, size: 300, persistent: true, map: file.map }, silentLogger);
  await c.readBlock(7);
  await sleep(50);
  assert.deepEqual(file.calls, [], 'cache-file slots are never prefaulted');
  await c.close();
});

test("reload: a slot whose data does not give its entry's ETag is fetched in full, never served", async () => {
  const md5 = (b) => createHash('md5').update(b).digest();
  const store = new RecordingStore(100);
  const good = [0, 1, 2, 3, 4].map((n) => block(n + 1));
  good.forEach((b, n) => store.blocks.set(n, b));
  const damaged = Buffer.from(good[1]);
  damaged[BS / 2] ^= 0x40;
  // slot -> [block, what the slot holds, the ETag its entry records (null: zeros, "absent")]
  const layout = [
    [0, good[0], md5(good[0])], // intact: verified with a conditional read
    [1, damaged, md5(good[1])], // one bit flipped
    [2, block(0), md5(good[2])], // zeroed
    [3, good[3], null], // right data, but the entry claims an absent block: verified by a full read, the ETag recorded
    [4, block(77), null], // stale data claiming an absent block
    [5, block(0), null], // absent block (zeros): a cheap conditional read (404 expected)
    [6, block(0), md5(block(0))], // absent, with an earlier version's MD5 of zeros: a full read
  ];
  const fill = () => {
    const slots = SlotStores.anonymous(BS, 8);
    for (const [slot, [n, data, etag]] of layout.entries()) {
      slots.write(slot, data);
      slots.setEntry(slot, n, false, etag);
    }
    return slots;
  };
  const warnings = [];
  const log = { ...silentLogger, warn: (m) => warnings.push(m) };
  let slots = fill();
  let cache = new BlockCache(store, slots, { ...defaults, persistent: true }, log);
  const r = await cache.restore({ verify: true, recoverDirty: false });
  assert.deepEqual(r, { clean: 7, dirty: 0, discarded: 0, dropped: 0 });
  assert.deepEqual([...store.conditionalReads].sort(), [0, 5], 'no conditional read for a slot that fails its checksum');
  assert.deepEqual([...store.reads].sort(), [1, 2, 3, 4, 6]);
  assert.equal(stat(cache, 'block_cache_verified'), 4);
  assert.equal(stat(cache, 'block_cache_mismatch'), 3);
  assert.deepEqual(warnings, [
    'cache file: 5 clean blocks did not match their checksum (damaged file?); fetched again from S3 (blocks 1, 2, 3, 4, 6)',
  ]);
  // Every slot now holds the right data and its stored object's ETag: reads are hits, and a reload trusts them.
  for (const [slot, [n]] of layout.entries()) {
    const want = store.blocks.get(n) ?? block(0);
    assert.ok((await cache.readBlock(n)).equals(want), `block ${n} reads back the stored data`);
    assert.equal(slots.entries().find((e) => e.slot === slot).etag, etagOf(store.blocks.get(n)));
  }
  assert.equal(store.reads.length, 5, 'all hits');
  await cache.close();

  // --blockCacheNoVerify trusts the file: nothing is read or hashed, the damaged slot is served.
  store.reads = [];
  store.conditionalReads = [];
  slots = fill();
  cache = new BlockCache(store, slots, { ...defaults, persistent: true }, log);
  await cache.restore({ verify: false, recoverDirty: false });
  assert.deepEqual([store.reads, store.conditionalReads], [[], []]);
  assert.ok((await cache.readBlock(1)).equals(damaged));
  await cache.close();
});

test('reload: thousands of damaged slots make one warning, with the first few block numbers', async () => {
  const store = new RecordingStore(5000, { readMs: 0 });
  const slots = SlotStores.anonymous(BS, 3000);
  for (let s = 0; s < 3000; s++) {
    store.blocks.set(s, block((s % 250) + 1));
    slots.setEntry(
      s,
      s,
      false,
      createHash('md5')
        .update(block((s % 250) + 1))
        .digest(),
    ); // slots left zero
  }
  const warnings = [];
  const cache = new BlockCache(store, slots, { ...defaults, size: 3000, threads: 8 }, { ...silentLogger, warn: (m) => warnings.push(m) });
  await cache.restore({ verify: true, recoverDirty: false });
  assert.equal(stat(cache, 'block_cache_mismatch'), 3000);
  assert.deepEqual(store.conditionalReads, []);
  assert.deepEqual(warnings, [
    'cache file: 3000 clean blocks did not match their checksum (damaged file?); fetched again from S3 (blocks 0, 1, 2, 3, 4, 5, 6, 7 and 2992 more)',
  ]);
  assert.ok((await cache.readBlock(2999)).equals(block((2999 % 250) + 1)));
  await cache.close();
});

test('close waits for the cache-file entries of blocks fetched just before it', async () => {
  // The slot's data sync is slow (a busy disk): the entry may only be written once it is done.
  const real = SlotStores.anonymous(BS, 8);
  const slots = new Proxy(real, {
    get(target, name) {
      if (name === 'syncData') return async (slot) => (await sleep(100), target.syncData(slot));
      const value = target[name];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const store = new RecordingStore(16, { readMs: 0 });
  store.blocks.set(3, block(7));
  const cache = new BlockCache(store, slots, { ...defaults, persistent: true, map: new BlockMaps(real) }, silentLogger);
  assert.ok((await cache.readBlock(3)).equals(block(7)));
  assert.deepEqual(real.entries(), [], 'not claimed before its data is synced');
  await cache.close(); // an unmount right after the read
  assert.deepEqual(
    real.entries().map((e) => [e.block, e.dirty, e.etag]),
    [[3, false, createHash('md5').update(block(7)).digest('hex')]],
  );
});

/**
 * The real write path over a real cache file, whose native ledger refuses any call that breaks
 * the crash order (a write into a slot its entry may still claim, an entry over unsynced data):
 * a refusal would surface here as a failed write or a "cache file:" warning. Overlapping
 * partial writes of one block used to read the block before another's data landed.
 */
async function partialWritesOverCacheFile(t) {
  const path = cacheFilePath(t);
  const slots = SlotStores.createFile(path, BS, 4, 0);
  const store = new RecordingStore(64, { readMs: 1, writeMs: 1 });
  const warnings = [];
  const log = { ...silentLogger, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
  const cache = new BlockCache(store, slots, { ...defaults, size: 4, writeDelayMs: 5, persistent: true }, log);
  const model = new Map();
  const expect = (n) => model.get(n) ?? (model.set(n, Buffer.alloc(BS)), model.get(n));
  const work = [];
  for (let round = 0; round < 6; round++) {
    for (let n = 0; n < 8; n++) {
      // Eight 64-byte stripes of each block, all at once; then reads of others evict it.
      for (let stripe = 0; stripe < 8; stripe++) {
        const part = Buffer.alloc(64, ((round * 64 + n * 8 + stripe) % 251) + 1);
        part.copy(expect(n), stripe * 64);
        work.push(cache.writeBlockPart(n, stripe * 64, part));
      }
      work.push(cache.readBlock(32 + ((round * 8 + n) % 16)));
    }
    await Promise.all(work.splice(0));
  }
  await cache.flush();
  for (const [n, want] of model) {
    assert.ok((await cache.readBlock(n)).equals(want), `block ${n} holds every stripe written`);
    assert.ok(store.blocks.get(n).equals(want), `block ${n} stored whole`);
  }
  assert.deepEqual(warnings, []);
  await cache.close();
  // What the file claims is true: every entry's slot gives its ETag (or checksum).
  const reopened = SlotStores.openFile(path);
  for (const e of reopened.recover(64, 4, true)) {
    assert.ok(e.fate === 'clean' || e.fate === 'dirty', `slot ${e.slot}: ${e.fate}`);
    if (e.fate === 'clean') assert.equal(etagOf(reopened.read(e.slot)), e.etag, `slot ${e.slot} gives its entry's ETag`);
  }
}

test(
  'with a cache file: partial writes of one block at once, evictions and refills keep every byte and the write order',
  partialWritesOverCacheFile,
);

test('with a cache file, an upload never starts under a write of its block (20 runs of the test above)', { timeout: 60000 }, async (t) => {
  // A fresh block's upload, hurried by a waiting writer or a flush, fetched its unwritten rest
  // (absent: zeros) while a write of it still waited for the file's sync; zeros over an absent
  // object need no request, so the upload ended in the same call, found the write under way and
  // started again at once, until the stack ran out (the test above hung in about 1 run of 5).
  for (let run = 0; run < 20; run++) await partialWritesOverCacheFile(t);
});

test('retire gives the slots memory back once everything is stored, and not before', async () => {
  const store = new RecordingStore(100);
  const slots = SlotStores.anonymous(BS, 4);
  const cache = new BlockCache(store, slots, { ...defaults, size: 4, writeDelayMs: 10000 }, silentLogger);
  const held = () => [0, 1, 2, 3].filter((s) => slots.read(s)[0] === 7).length;
  await cache.writeBlock(1, block(7));
  await cache.retire();
  assert.equal(held(), 1, 'a dirty block keeps its slot');
  assert.deepEqual(await cache.readBlock(1), block(7));
  await cache.flush();
  await cache.retire();
  assert.equal(held(), 0, 'stored: the slot data is gone from memory');
  await cache.close();
  assert.deepEqual(store.blocks.get(1), block(7), 'and it is in the store');
});

test('uploads read their blocks in place from the first one (no copy into a fresh buffer)', async () => {
  class ViewingStore extends RecordingStore {
    arrays = [];
    async writeBlock(n, data) {
      if (data !== null) this.arrays.push(data.buffer.byteLength);
      return super.writeBlock(n, data);
    }
  }
  const store = new ViewingStore(100);
  const cache = cacheOver(store, { size: 8, writeDelayMs: 0 });
  for (const n of [1, 2, 3]) await cache.writeBlock(n, block(n));
  await cache.flush();
  assert.equal(store.arrays.length, 3);
  assert.ok(
    store.arrays.every((bytes) => bytes >= 8 * BS),
    `uploaded from ArrayBuffers of ${store.arrays} bytes, not the slots' view`,
  );
  for (const n of [1, 2, 3]) assert.deepEqual(store.blocks.get(n), block(n));
  await cache.close();
});
