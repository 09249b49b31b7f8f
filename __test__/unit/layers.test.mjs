import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PartialBlockLayer } from '../../dist/layers/partialBlock.js';
import { ZeroCache } from '../../dist/layers/zeroCache.js';
import { BlockBackend } from '../../dist/backend/blockBackend.js';
import { DirObjectStore } from '../../dist/backend/dirObjectStore.js';
import { HttpStats } from '../../dist/backend/httpStats.js';
import { createBlockCodec } from '../../dist/native/addon.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @typedef {import('../../dist/store/blockStore.js').BlockStore} BlockStore */

/**
 * A block store in memory that records its traffic and answers after a random short delay.
 * @implements {BlockStore}
 */
class MemoryStore {
  /**
   * @param {number} blockSize
   * @param {number} numBlocks
   */
  constructor(blockSize, numBlocks) {
    this.blockSize = blockSize;
    this.numBlocks = numBlocks;
    /** @type {Map<number, Buffer>} */
    this.blocks = new Map();
    this.reads = 0;
    this.writes = 0;
  }
  async readBlock(n) {
    this.reads++;
    await sleep(Math.random() * 3);
    return Buffer.from(this.blocks.get(n) ?? Buffer.alloc(this.blockSize));
  }
  async writeBlock(n, data) {
    this.writes++;
    const copy = data === null ? null : Buffer.from(data);
    await sleep(Math.random() * 3);
    if (copy === null) this.blocks.delete(n);
    else this.blocks.set(n, copy);
  }
  async flush() {}
  async listNonZero(cb, options) {
    for (const n of this.blocks.keys()) cb(n);
    options?.onBlocksDone?.(0, this.numBlocks);
  }
  async close() {}
}

test('full-block writes never read; partial writes read/modify/write', async () => {
  const mem = new MemoryStore(4096, 16);
  const layer = new PartialBlockLayer(mem);
  await layer.write(4096, randomBytes(8192));
  assert.equal(mem.reads, 0);
  assert.equal(mem.writes, 2);
  await layer.write(100, Buffer.from('hello'));
  assert.equal(mem.reads, 1);
  const out = Buffer.alloc(5);
  assert.equal(await layer.read(100, out), 5);
  assert.equal(out.toString(), 'hello');
});

test('concurrent writers inside one block never lose bytes', async () => {
  const mem = new MemoryStore(4096, 4);
  const layer = new PartialBlockLayer(mem);
  const expected = Buffer.alloc(4 * 4096);
  const writes = [];
  for (let i = 0; i < 200; i++) {
    const pos = Math.floor(Math.random() * (expected.length - 300));
    const data = randomBytes(1 + Math.floor(Math.random() * 300));
    data.copy(expected, pos);
    writes.push(layer.write(pos, data));
  }
  await Promise.all(writes);
  const actual = Buffer.alloc(expected.length);
  await layer.read(0, actual);
  assert.ok(actual.equals(expected), 'file content equals the model of the writes');
});

test('reads and writes past the end', async () => {
  const layer = new PartialBlockLayer(new MemoryStore(512, 2));
  const buf = Buffer.alloc(1000);
  assert.equal(await layer.read(900, buf), 124);
  assert.equal(await layer.read(2000, buf), 0);
  await assert.rejects(layer.write(1000, Buffer.alloc(100)), RangeError);
});

test('zero cache: listing makes absent blocks free to read and to zero', async () => {
  const mem = new MemoryStore(512, 20);
  mem.blocks.set(3, Buffer.alloc(512, 7));
  const zc = new ZeroCache(mem);
  assert.equal(await zc.learnFromListing(), 1);
  assert.deepEqual(Object.fromEntries(zc.statsLines()).zero_block_cache_size, '19 blocks');
  assert.ok((await zc.readBlock(5)).equals(Buffer.alloc(512)));
  assert.equal(mem.reads, 0, 'known-zero block read without a request');
  await zc.writeBlock(6, null);
  assert.equal(mem.writes, 0, 'zeros over a known-zero block need no request');
  await zc.writeBlock(6, Buffer.alloc(512, 1));
  assert.equal(mem.writes, 1);
  assert.ok((await zc.readBlock(6)).equals(Buffer.alloc(512, 1)), 'written block no longer zero');
  await zc.readBlock(3);
  assert.equal(mem.reads, 2);
  const stats = Object.fromEntries(zc.statsLines());
  assert.equal(stats.zero_block_cache_read_hits, 1);
  assert.equal(stats.zero_block_cache_write_hits, 1);
  assert.equal(stats.zero_block_cache_size, '18 blocks');
});

test('zero cache learns zero blocks from reads without a listing', async () => {
  const mem = new MemoryStore(512, 4);
  const zc = new ZeroCache(mem);
  await zc.readBlock(2);
  await zc.readBlock(2);
  assert.equal(mem.reads, 1);
});

test('block backend over a directory: zero blocks deleted, block 0 carries the geometry', async () => {
  const dir = mkdtempSync(join(tmpdir(), 's3b-layers-'));
  try {
    const objects = new DirObjectStore(dir);
    const stats = new HttpStats();
    const codec = createBlockCodec({ blockSize: 512 });
    const backend = new BlockBackend(
      objects,
      { prefix: 'p-', blockHashPrefix: false, blockSize: 512, numBlocks: 8, codec, encodeWrites: false },
      stats,
    );
    const data = randomBytes(512);
    await backend.writeBlock(0, data);
    await backend.writeBlock(5, Buffer.alloc(512, 9));
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => !n.startsWith('.'))
        .sort(),
      ['p-00000000', 'p-00000005'],
    );
    const head = await objects.head('p-00000000');
    assert.equal(head.metadata['s3backer-blocksize'], '512');
    assert.equal(head.metadata['s3backer-filesize'], '4096');
    assert.equal((await objects.head('p-00000005')).metadata['s3backer-blocksize'], undefined);
    assert.ok((await backend.readBlock(0)).equals(data));
    await backend.writeBlock(5, Buffer.alloc(512));
    assert.equal(await objects.head('p-00000005'), null, 'all-zero write deletes the object');
    assert.ok((await backend.readBlock(5)).equals(Buffer.alloc(512)));
    // A caller's buffer (a cache slot) gets an absent block's zeros in place of a new buffer.
    const into = Buffer.alloc(512, 0xee);
    const absent = await backend.readBlockTagged(5, into);
    assert.equal(absent.data, into, "the zeros are in the caller's buffer");
    assert.ok(into.equals(Buffer.alloc(512)));
    const listed = [];
    await backend.listNonZero((n) => listed.push(n));
    assert.deepEqual(listed, [0]);
    await objects.put('p-00000003', Buffer.alloc(100, 1), { contentType: 'x' });
    await assert.rejects(backend.readBlock(3), /100 bytes, expected 512/);
    await objects.put('p-00000004', Buffer.alloc(512, 1), { contentType: 'x', contentEncoding: 'deflate' });
    await assert.rejects(backend.readBlock(4), /corrupt compressed data/);
    await objects.put('p-00000004', Buffer.alloc(512, 1), { contentType: 'x', contentEncoding: 'gzip' });
    await assert.rejects(backend.readBlock(4), /unknown Content-Encoding "gzip"/);
    assert.equal(stats.zeroBlocksWritten, 1);
    assert.equal(stats.normalBlocksWritten, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("block backend's ETags: what it writes is what it reads, and storesAs re-encodes compressed or encrypted data", async () => {
  const dir = mkdtempSync(join(tmpdir(), 's3b-layers-'));
  const { createHash } = await import('node:crypto');
  const md5 = (b) => createHash('md5').update(b).digest('hex');
  try {
    for (const codecOptions of [
      {},
      { compression: 'deflate' },
      { compression: 'deflate', cipher: 'AES-128-CBC', password: 'pw', salt: 'b/' },
    ]) {
      const objects = new DirObjectStore(join(dir, String(Object.keys(codecOptions).length)));
      const codec = createBlockCodec({ blockSize: 4096, ...codecOptions });
      const encodeWrites = codecOptions.compression !== undefined;
      const backend = new BlockBackend(
        objects,
        { prefix: '', blockHashPrefix: false, blockSize: 4096, numBlocks: 8, codec, encodeWrites },
        new HttpStats(),
      );
      const data = Buffer.concat([Buffer.alloc(2048, 7), randomBytes(2048)]);
      const etag = await backend.writeBlock(3, data);
      const stored = await objects.get('00000003');
      assert.equal(etag, md5(stored.body), 'the ETag is the MD5 of the stored body');
      assert.equal(encodeWrites, etag !== md5(data), "which differs from the data's when encoded");
      assert.deepEqual(await backend.readBlockTagged(3), { data, etag });
      assert.equal(await backend.storesAs(3, data, etag), true, 'our encoding reproduces the body');
      const changed = Buffer.from(data);
      changed[100] ^= 1;
      assert.equal(await backend.storesAs(3, changed, etag), false);
      assert.equal(await backend.readBlockIfChanged(3, etag), null, 'unchanged');
      assert.equal(await backend.writeBlock(4, null), '0'.repeat(32), 'an absent block has the zero ETag');
      assert.equal(await backend.storesAs(4, Buffer.alloc(4096), '0'.repeat(32)), true);
      assert.equal(await backend.readBlockIfChanged(4, '0'.repeat(32)), null, 'still absent');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
