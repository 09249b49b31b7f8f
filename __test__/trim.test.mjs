// TRIM / discard below the FUSE front end: PartialBlockLayer.zero() through the stack that
// buildStack makes, over a real directory store, moto (per-key errors from a bucket policy) and
// s3rver, behind the recording proxy. Partial edges keep their other bytes, whole blocks lose
// their objects in multi-object deletes of up to 1000 keys (Content-MD5, upstream's body), blocks
// the zero cache knows cost nothing, dirty cached data is never uploaded after a trim, and an
// upload under way ends before the delete goes out.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startS3Server, listKeys, putObject, getObject } from './helpers/s3server.mjs';
import { startMoto, MOTO_SKIP } from './helpers/moto.mjs';
import { startRecordingProxy } from './helpers/recordingProxy.mjs';
import { runCli } from './helpers/ours.mjs';
import { cacheSettings, s3StoreOptions } from './helpers/settings.mjs';

const require = createRequire(import.meta.url);
const { buildStack } = require('../dist/mount/stack.js');
const { WRITE_BACK_TRIM_BLOCKS } = require('../dist/layers/blockCache.js');
const { PartialBlockLayer } = require('../dist/layers/partialBlock.js');
const { EcProtect } = require('../dist/layers/ecProtect.js');
const { BlockBackend } = require('../dist/backend/blockBackend.js');
const { DirObjectStore } = require('../dist/backend/dirObjectStore.js');
const { FaultyObjectStore } = require('../dist/backend/faultyObjectStore.js');
const { S3ObjectStore } = require('../dist/backend/s3/s3ObjectStore.js');
const { HttpStats } = require('../dist/backend/httpStats.js');
const { createBlockCodec, SlotStores } = require('../dist/native/addon.js');
const { renderStats } = require('../dist/stats/stats.js');
const { renderPrometheus } = require('../dist/stats/prometheus.js');
const { silentLogger } = require('../dist/util/log.js');
const { hex8 } = require('../dist/format/blockNames.js');

const BS = 4096;
const key = (prefix, n) => `${prefix}${hex8(n)}`;
const sha = (b) => createHash('sha256').update(b).digest('hex');
const noCache = cacheSettings({ size: 0, writeDelayMs: 0, file: undefined, noVerify: false, recoverDirty: false, fileAdvise: false });
const cache = (extra = {}) => ({ ...noCache, size: 64, writeDelayMs: 60_000, ...extra });

/** The stack a mount builds, over `objects`; `httpStats` is the one the S3 store counts into. */
function stack(objects, { numBlocks = 16, blockSize = BS, prefix = '', blockCache = cache(), httpStats = new HttpStats(), ...extra } = {}) {
  // writeBackTrims 0: every trim goes down at once (the path these tests follow), unless a test asks.
  const options = {
    blockSize,
    numBlocks,
    prefix,
    blockHashPrefix: false,
    blockCache,
    codec: createBlockCodec({ blockSize }),
    encodeWrites: false,
    ecProtect: undefined,
    writeBackTrims: 0,
    ...extra,
  };
  const s = buildStack(objects, options, httpStats, silentLogger);
  const lines = () => Object.fromEntries(s.statsSources.flatMap((src) => [...src.statsLines(), ...(src.extraStatsLines?.() ?? [])]));
  return { ...s, httpStats, lines };
}

/** Runs `fn` with a fresh directory (the --test store's), removed afterwards. */
async function inDir(name, fn) {
  const dir = mkdtempSync(join(tmpdir(), name));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const readAll = async (data) => {
  const out = Buffer.alloc(data.size);
  await data.read(0, out);
  return out;
};

/** An S3 object store against `endpoint` (the proxy or the server itself) for bucket "disk". */
function s3Objects(server, endpoint, { prefix = '', stats = new HttpStats(), log = silentLogger, retry = {} } = {}) {
  const options = s3StoreOptions(`${endpoint}/`, {
    prefix,
    region: server.region,
    listBlocksThreads: 1,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    ...retry,
  });
  return new S3ObjectStore(options, stats, log);
}

/** The stack over moto through the proxy, counting into the same HttpStats as its store. */
function s3Stack(prefix, { log, ...options } = {}) {
  const httpStats = new HttpStats();
  return stack(s3Objects(moto, proxy.endpoint, { prefix, stats: httpStats, log }), { prefix, httpStats, ...options });
}

const posts = (proxy) => proxy.requests.filter((r) => r.method === 'POST');
const keysIn = (xml) => [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
const writes = (proxy) => proxy.requests.filter((r) => ['PUT', 'DELETE', 'POST'].includes(r.method));

test("the layer: unaligned ranges keep the edges' other bytes, whole blocks lose their files, RangeError past the end", () =>
  inDir('trim-dir-', async (dir) => {
    const s = stack(new DirObjectStore(dir), { numBlocks: 8 });
    const model = randomBytes(8 * BS);
    await s.data.write(0, model);
    await s.data.flush();
    for (let n = 0; n < 8; n++) assert.ok(existsSync(join(dir, key('', n))), `block ${n} stored`);

    // From inside block 1 to inside block 6: blocks 2..5 whole, 1 and 6 partly.
    const from = BS + 1000;
    const to = 6 * BS + 123;
    await s.data.zero(from, to - from);
    model.fill(0, from, to);
    // Inside one block, both ends unaligned.
    await s.data.zero(7 * BS + 10, 20);
    model.fill(0, 7 * BS + 10, 7 * BS + 30);
    assert.equal(sha(await readAll(s.data)), sha(model), 'reads as the model: zeros in the ranges, data around them');
    await s.data.flush();
    for (const n of [2, 3, 4, 5]) assert.ok(!existsSync(join(dir, key('', n))), `block ${n}'s file is gone`);
    for (const n of [0, 1, 6, 7]) assert.ok(existsSync(join(dir, key('', n))), `block ${n} (partly zeroed or untouched) is kept`);
    await assert.rejects(s.data.zero(7 * BS, BS + 1), RangeError);
    await assert.rejects(s.data.zero(-1, 10), RangeError);
    assert.equal(s.lines().discard_requests, 2, 'both zero() calls counted (the refused ones are not)');
    assert.equal(s.lines().discarded_blocks, 4);
    await s.top.close();

    // What is stored is what a new mount reads.
    const again = stack(new DirObjectStore(dir), { numBlocks: 8, blockCache: noCache });
    assert.equal(sha(await readAll(again.data)), sha(model), 'a fresh stack reads the same');
    await again.top.close();
  }));

test('a partial write queued behind a trim of its block lands on zeros, not on the old data', () =>
  inDir('trim-lock-', async (dir) => {
    // No block cache: the write is a read/modify/write, which would bring back the old bytes
    // if it read the block before the delete and wrote it after.
    const s = stack(new DirObjectStore(dir), { numBlocks: 8, blockCache: noCache, sharedDisk: true });
    await s.data.write(0, randomBytes(8 * BS));
    const trim = s.data.zero(0, 8 * BS);
    const write = s.data.write(3 * BS + 10, Buffer.from('hello'));
    await Promise.all([trim, write]);
    const expected = Buffer.alloc(8 * BS);
    expected.write('hello', 3 * BS + 10);
    assert.equal(sha(await readAll(s.data)), sha(expected), 'zeros everywhere but the write');
    await s.top.close();
  }));

test('the block cache: a block read while its trim is under way is not cached from before the delete', () =>
  inDir('trim-gate-', async (dir) => {
    const data = randomBytes(BS);
    const before = stack(new DirObjectStore(dir), { numBlocks: 4, blockCache: noCache });
    await before.data.write(BS, data);
    await before.top.close();
    // The directory, with the bulk delete held until the gate opens.
    const inner = new DirObjectStore(dir);
    let open;
    const gate = new Promise((r) => (open = r));
    const objects = Object.assign(Object.create(inner), { deleteMany: async (keys) => (await gate, inner.deleteMany(keys)) });
    const s = stack(objects, { numBlocks: 4 });
    const trim = s.blockCache.trimBlocks([1]);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok((await s.blockCache.readBlock(1)).equals(data), 'before the delete: the stored data');
    open();
    await trim;
    assert.ok(
      (await s.blockCache.readBlock(1)).every((b) => b === 0),
      'after it: zeros, not a copy fetched before',
    );
    await s.top.close();
  }));

test('with a cache file, no slot claims a block whose delete is under way; a failed trim gives a dirty one its claim back', () =>
  inDir('trim-file-', async (dir) => {
    const stored = join(dir, 'store');
    const seeded = stack(new DirObjectStore(stored), { numBlocks: 8, blockCache: noCache });
    const clean = randomBytes(BS);
    await seeded.data.write(3 * BS, clean);
    await seeded.top.close();
    // The directory, with the bulk delete held at a gate (failing it or letting it through) and PUTs counted.
    const inner = new DirObjectStore(stored);
    let gate;
    const puts = [];
    const objects = Object.assign(Object.create(inner), {
      deleteMany: async (keys) => (await new Promise((resolve, reject) => (gate = { resolve, reject })), inner.deleteMany(keys)),
      put: (k, body, options) => (puts.push(k), inner.put(k, body, options)),
    });
    const slots = SlotStores.createFile(join(dir, 'cache'), BS, 8, 1234);
    const options = {
      blockSize: BS,
      numBlocks: 8,
      prefix: '',
      blockHashPrefix: false,
      blockCache: cache({ size: 8 }),
      codec: createBlockCodec({ blockSize: BS }),
      encodeWrites: false,
      ecProtect: undefined,
      writeBackTrims: 0,
    };
    const s = buildStack(objects, options, new HttpStats(), silentLogger, slots);
    const claims = () =>
      slots
        .entries()
        .map((e) => `${e.block}${e.dirty ? ' dirty' : ''}`)
        .sort();
    const waitForGate = async () => {
      while (gate === undefined) await new Promise((r) => setTimeout(r, 5));
    };
    assert.ok((await s.top.readBlock(3)).equals(clean));
    await s.data.write(2 * BS, randomBytes(BS));
    while (claims().length < 2) await new Promise((r) => setTimeout(r, 5)); // block 3's clean claim follows its data
    assert.deepEqual(claims(), ['2 dirty', '3']);

    let trim = s.data.zero(2 * BS, 2 * BS);
    await waitForGate();
    assert.deepEqual(claims(), [], 'while the delete is under way the file claims neither block');
    gate.reject(new Error('injected: the bulk delete failed'));
    await assert.rejects(trim, /injected/);
    assert.deepEqual(claims(), ['2 dirty'], 'the dirty block is claimed again (its upload redoes it); the clean copy is dropped');

    gate = undefined;
    trim = s.data.zero(2 * BS, 2 * BS);
    await waitForGate();
    assert.deepEqual(claims(), []);
    gate.resolve();
    await trim;
    assert.deepEqual(claims(), []);
    await s.top.close();
    assert.deepEqual(puts, [], 'the dirty block was never uploaded');
    for (const n of [2, 3]) assert.ok(!existsSync(join(stored, key('', n))), `block ${n}'s file is gone`);
  }));

test('a small trim is written back: zeros at once, its DELETEs not waited for, done by a flush; a bigger one goes out at once', () =>
  inDir('trim-back-', async (dir) => {
    const seeded = stack(new DirObjectStore(dir), { numBlocks: 64, blockCache: noCache });
    await seeded.data.write(0, randomBytes(40 * BS));
    await seeded.top.close();
    const inner = new DirObjectStore(dir);
    // Single DELETEs wait at a gate: the trim must not wait for them.
    let open;
    const gate = new Promise((r) => (open = r));
    const deletes = [];
    const objects = Object.assign(Object.create(inner), {
      delete: async (k) => (await gate, deletes.push(k), inner.delete(k)),
      deleteMany: (keys) => (deletes.push(...keys), inner.deleteMany(keys)),
    });
    const s = stack(objects, { numBlocks: 64, writeBackTrims: WRITE_BACK_TRIM_BLOCKS });
    assert.equal(WRITE_BACK_TRIM_BLOCKS, 16);
    // Blocks 2-17: sixteen whole blocks, and parts of blocks 1 and 18.
    await s.data.zero(BS + 100, 17 * BS);
    assert.deepEqual(deletes, [], 'the trim returned with no delete done');
    open();
    const after = await readAll(s.data);
    assert.ok(
      after.subarray(BS + 100, 18 * BS + 100).every((b) => b === 0),
      'the range reads as zeros at once',
    );
    await s.top.flush();
    assert.deepEqual(
      [...deletes].sort(),
      Array.from({ length: 16 }, (_, i) => key('', i + 2)).sort(),
      'a DELETE of each whole block, done by the flush',
    );
    for (let n = 2; n <= 17; n++) assert.ok(!existsSync(join(dir, key('', n))), `block ${n}'s object is gone`);
    // Seventeen whole blocks (20-36): sent down at once, as a multi-object delete, before the trim returns.
    deletes.length = 0;
    await s.data.zero(20 * BS, 17 * BS);
    assert.equal(deletes.length, 17, 'deleted before the trim returned');
    await s.top.close();
    const reread = stack(new DirObjectStore(dir), { numBlocks: 64, blockCache: noCache });
    const stored = await readAll(reread.data);
    assert.ok(
      stored.subarray(BS + 100, 18 * BS + 100).every((b) => b === 0) && stored.subarray(20 * BS, 37 * BS).every((b) => b === 0),
      'zeros in the store',
    );
    assert.ok(!stored.subarray(37 * BS, 40 * BS).every((b) => b === 0), 'the rest kept');
    await reread.top.close();
  }));

test('test mode: --test-errors faults hit the bulk delete too, and its retries ride them out', () =>
  inDir('trim-faulty-', async (dir) => {
    const stats = new HttpStats();
    // Fails the first two attempts of every operation, then lets it through.
    let calls = 0;
    const random = () => (calls++ % 3 < 2 ? 0 : 0.99);
    const faulty = new FaultyObjectStore(
      new DirObjectStore(dir),
      { delays: false, errors: true, discard: false },
      { initialRetryPauseMs: 1, maxRetryPauseMs: 100 },
      stats,
      silentLogger,
      random,
    );
    const s = stack(faulty, { numBlocks: 4, blockCache: noCache, httpStats: stats });
    await s.data.write(0, randomBytes(4 * BS));
    const retriesBefore = stats.retries;
    await s.data.zero(0, 4 * BS);
    assert.equal(stats.retries - retriesBefore, 2, 'one bulk delete, retried twice');
    for (let n = 0; n < 4; n++) assert.ok(!existsSync(join(dir, key('', n))));
  }));

test('test mode: --test-discard deletes nothing and fails nothing', () =>
  inDir('trim-discard-', async (dir) => {
    const plain = new DirObjectStore(dir);
    await plain.put('a', Buffer.from('kept'), { contentType: 'application/octet-stream' });
    const faulty = new FaultyObjectStore(
      plain,
      { delays: false, errors: false, discard: true },
      { initialRetryPauseMs: 1, maxRetryPauseMs: 10 },
      new HttpStats(),
      silentLogger,
    );
    await faulty.deleteMany(['a', 'b']);
    assert.ok(existsSync(join(dir, 'a')), 'no file touched');
  }));

test('a store without trimBlocks gets a zero write per block, a bounded number at a time', async () => {
  let inFlight = 0;
  let most = 0;
  const zeroed = [];
  const store = {
    blockSize: 512,
    numBlocks: 5000,
    async readBlock() {
      return Buffer.alloc(512);
    },
    async writeBlock(n, data) {
      assert.equal(data, null);
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      zeroed.push(n);
    },
    async flush() {},
    async listNonZero() {},
    async close() {},
  };
  const layer = new PartialBlockLayer(store);
  await layer.zero(0, 5000 * 512);
  assert.equal(zeroed.length, 5000);
  assert.deepEqual(
    [...zeroed].sort((a, b) => a - b),
    Array.from({ length: 5000 }, (_, i) => i),
  );
  assert.ok(most <= 64, `at most 4 batches of 16 zero writes in flight (saw ${most})`);
});

// ---- over moto, behind the recording proxy ---------------------------------------------------

let moto;
let proxy;
before(async () => {
  if (MOTO_SKIP) return;
  moto = await startMoto({ buckets: ['disk'] });
  proxy = await startRecordingProxy({ target: moto });
});
after(async () => {
  await proxy?.stop();
  await moto?.stop();
});

/** Stores random data as blocks `blocks` under `prefix`, straight into moto; returns block -> data. */
async function seed(prefix, blocks, size = BS) {
  const model = new Map();
  for (const n of blocks) {
    const data = randomBytes(size);
    model.set(n, data);
    await putObject(moto, 'disk', key(prefix, n), data);
  }
  return model;
}

test(
  '2500 blocks: three multi-object deletes of 1000, 1000 and 500 keys, as upstream writes them',
  { skip: MOTO_SKIP, timeout: 120000 },
  async () => {
    const prefix = 'many/';
    await seed(prefix, [0, 999, 1000, 1999, 2000, 2499, 2500], 512);
    const s = s3Stack(prefix, { numBlocks: 2600, blockSize: 512 });
    proxy.clear();
    await s.data.zero(0, 2500 * 512);
    const sent = posts(proxy);
    assert.equal(sent.length, 3, 'one request per 1000 keys');
    assert.deepEqual(
      sent.map((r) => keysIn(r.body).length).sort((a, b) => b - a),
      [1000, 1000, 500],
    );
    assert.deepEqual(
      sent.flatMap((r) => keysIn(r.body)).sort(),
      Array.from({ length: 2500 }, (_, n) => key(prefix, n)),
    );
    for (const r of sent) {
      assert.match(r.url, /^\/disk\/\?delete$/);
      assert.equal(r.status, 200);
      // The proxy refuses a POST whose Content-MD5 is missing or wrong, as S3 does.
      assert.equal(r.headers['content-md5'], createHash('md5').update(r.body).digest('base64'));
      assert.equal(r.headers['content-type'], 'application/xml');
      assert.match(r.body, /^<Delete><Object><Key>[^<]+<\/Key><\/Object>/, "upstream's body: no XML declaration");
      assert.doesNotMatch(r.body, /Quiet/, 'no <Quiet>, as upstream');
    }
    assert.equal(writes(proxy).length, 3, 'no single DELETE besides');
    assert.deepEqual(await listKeys(moto, 'disk', prefix), [key(prefix, 2500)], 'every trimmed object gone, the next one kept');
    const lines = s.lines();
    assert.equal(lines.http_multi_deletes, 3);
    assert.equal(lines.http_multi_deleted_keys, 2500);
    assert.equal(lines.discarded_blocks, 2500);
    // The stats file's text and /metrics show them.
    const text = renderStats(s.statsSources);
    for (const line of [
      'http_multi_deletes           3',
      'http_multi_deleted_keys      2500',
      'discard_requests             1',
      'discarded_blocks             2500',
    ]) {
      assert.ok(text.includes(`${line}\n`), `stats file has "${line}"`);
    }
    const metrics = renderPrometheus({ stats: s.statsSources });
    for (const line of [
      's3backer_http_multi_deletes_total 3',
      's3backer_http_multi_deleted_keys_total 2500',
      's3backer_discard_requests_total 1',
      's3backer_discarded_blocks_total 2500',
    ]) {
      assert.ok(metrics.split('\n').includes(line), `/metrics has "${line}"`);
    }
    // Reads of the trimmed range: zeros, known to the zero cache now (no request).
    proxy.clear();
    const back = Buffer.alloc(2500 * 512);
    await s.data.read(0, back);
    assert.ok(back.every((b) => b === 0));
    assert.equal(proxy.requests.length, 0, 'the zero cache answers every trimmed block');
    await s.top.close();
  },
);

test(
  'blocks the zero cache knows cost nothing: a discard of a listed, empty disk sends no request',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'fresh/';
    const s = s3Stack(prefix, { numBlocks: 3000 });
    await s.zeroCache.learnFromListing(); // --listBlocks on a fresh bucket
    proxy.clear();
    // As mkfs.ext4 discards a new disk, in a few unaligned calls.
    await s.data.zero(0, 1000 * BS + 7);
    await s.data.zero(1000 * BS + 7, 2000 * BS - 7);
    assert.deepEqual(
      proxy.requests.map((r) => `${r.method} ${r.url}`),
      [],
      'not a PUT, DELETE, POST or GET',
    );
    const lines = s.lines();
    // 2999 whole blocks, and block 1000's two partial edges (zero writes of a known-zero block).
    assert.equal(lines.zero_block_cache_write_hits, 3001, 'known zeros count as write hits, as upstream counts them');
    assert.equal(lines.discarded_blocks, 2999);
    assert.equal(lines.http_multi_deletes, 0);
    await s.top.close();
  },
);

test(
  'a dirty block trimmed before its upload is never uploaded; clean copies go; readers see zeros',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'dirty/';
    const model = await seed(prefix, [1, 2]);
    const s = s3Stack(prefix, { numBlocks: 8 }); // write delay 60 s
    assert.ok((await s.top.readBlock(1)).equals(model.get(1)), 'block 1 cached clean');
    proxy.clear();
    // Dirty, not uploaded yet (out of order: a writer moving on to the next block would have its
    // last one uploaded at once).
    await s.data.write(3 * BS, randomBytes(BS)); // a new block
    await s.data.write(2 * BS, randomBytes(BS)); // over stored data
    assert.equal(s.blockCache.dirtyCount, 2);
    await s.data.zero(BS, 3 * BS);
    assert.equal(s.blockCache.dirtyCount, 0, 'the dirty copies are superseded');
    const back = Buffer.alloc(3 * BS);
    await s.data.read(BS, back);
    assert.ok(
      back.every((b) => b === 0),
      'zeros, not the cached clean or dirty data',
    );
    await s.data.flush();
    await s.top.close();
    assert.deepEqual(
      proxy.requests.filter((r) => r.method === 'PUT').map((r) => r.key),
      [],
      'no upload after the trim, not even at close',
    );
    assert.deepEqual(await listKeys(moto, 'disk', prefix), []);
    assert.equal(s.lines().block_cache_discarded_dirty, 2);
    assert.equal(s.lines().block_cache_current_size, '0 blocks', 'the slots are freed');
  },
);

test(
  'an upload under way ends before the delete goes out; a flush waiting for a trimmed block resolves',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'race/';
    const s = s3Stack(prefix, { numBlocks: 8, blockCache: cache({ writeDelayMs: 0 }) });
    proxy.clear();
    proxy.inject('slow', { only: new RegExp(`^PUT /disk/${prefix}00000004`), delayMs: 1500 });
    await s.data.write(4 * BS, randomBytes(BS));
    // The upload starts at once (no write delay) and is held up by the proxy.
    while (!proxy.requests.some((r) => r.method === 'PUT')) await new Promise((r) => setTimeout(r, 10));
    await s.data.zero(4 * BS, BS);
    const put = proxy.requests.find((r) => r.method === 'PUT');
    const post = posts(proxy)[0];
    assert.ok(post, 'the trim went out as a multi-object delete');
    assert.ok(
      put.doneAt !== undefined && post.at >= put.doneAt,
      `the delete (at ${post.at}) followed the upload's answer (at ${put.doneAt})`,
    );
    assert.equal(await getObject(moto, 'disk', key(prefix, 4)), null, 'the delete landed last: the object is gone');

    await s.top.close();

    // A flush of a dirty block whose trim is under way waits for the trim, and uploads nothing.
    const held = s3Stack(prefix, { numBlocks: 8 }); // write delay 60 s
    await held.data.write(5 * BS, randomBytes(BS));
    proxy.clear();
    proxy.inject('slow', { only: /^POST /, delayMs: 800 });
    const trim = held.data.zero(5 * BS, BS);
    while (posts(proxy).length === 0) await new Promise((r) => setTimeout(r, 10));
    await held.data.flush();
    assert.ok(posts(proxy)[0].doneAt !== undefined, 'the flush resolved once the delete was answered');
    await trim;
    await held.top.close();
    assert.deepEqual(
      proxy.requests.filter((r) => r.method === 'PUT'),
      [],
      'the superseded block was never uploaded',
    );
    assert.equal(await getObject(moto, 'disk', key(prefix, 5)), null);
  },
);

test(
  'a per-key error in the answer fails the trim; the other keys are deleted and the failed block keeps its data',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'denied/';
    const model = await seed(prefix, [0, 1, 2, 3]);
    const { PutBucketPolicyCommand, DeleteBucketPolicyCommand } = await import('@aws-sdk/client-s3');
    const policy = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::disk/${key(prefix, 2)}` }],
    };
    await moto.client().send(new PutBucketPolicyCommand({ Bucket: 'disk', Policy: JSON.stringify(policy) }));
    try {
      const s = s3Stack(prefix, { numBlocks: 4 });
      for (let n = 0; n < 4; n++) await s.top.readBlock(n); // cached clean
      proxy.clear();
      await assert.rejects(s.data.zero(0, 4 * BS), (err) => {
        assert.match(err.message, new RegExp(`${key(prefix, 2)} not deleted: AccessDenied`));
        return true;
      });
      assert.equal(posts(proxy).length, 1);
      assert.equal(posts(proxy)[0].status, 200, 'the request itself succeeded: only the answer says which keys failed');
      assert.deepEqual(await listKeys(moto, 'disk', prefix), [key(prefix, 2)]);
      // Nothing claims the failed block is zero: neither the zero cache nor a stale cached copy.
      assert.equal(s.zeroCache.isKnownZero(2), false);
      const back = Buffer.alloc(BS);
      await s.data.read(2 * BS, back);
      assert.ok(back.equals(model.get(2)), 'block 2 reads as stored');
      assert.equal(s.lines().http_multi_deleted_keys, 3);
      await s.top.close();
    } finally {
      await moto.client().send(new DeleteBucketPolicyCommand({ Bucket: 'disk' }));
    }
  },
);

test(
  'an endpoint answering 501 to multi-object delete gets single DELETEs, then and from then on',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'nomulti/';
    await seed(prefix, [0, 1, 2, 3, 4, 5]);
    const warnings = [];
    const log = { ...silentLogger, warn: (m) => warnings.push(m) };
    const s = s3Stack(prefix, { numBlocks: 6, blockCache: noCache, log });
    proxy.clear();
    proxy.inject('status', { only: /^POST /, status: 501 });
    await s.data.zero(0, 3 * BS);
    assert.deepEqual(
      writes(proxy)
        .map((r) => r.method)
        .sort(),
      ['DELETE', 'DELETE', 'DELETE', 'POST'],
      'refused once (not retried), then one DELETE per block',
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /does not implement multi-object delete/);
    proxy.clear();
    await s.data.zero(3 * BS, 3 * BS);
    assert.deepEqual(
      writes(proxy).map((r) => r.method),
      ['DELETE', 'DELETE', 'DELETE'],
      'no POST tried again',
    );
    assert.deepEqual(await listKeys(moto, 'disk', prefix), []);
    assert.equal(s.httpStats.deletes, 6);
    assert.equal(warnings.length, 1, 'said once');
    await s.top.close();
  },
);

test(
  'shared disk mode (no caches) and the eventual-consistency guard: trims go straight down, bookkept',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'shared/';
    await seed(prefix, [0, 1, 2, 3]);
    const shared = s3Stack(prefix, { numBlocks: 4, blockCache: noCache, sharedDisk: true });
    assert.equal(shared.zeroCache, undefined);
    proxy.clear();
    await shared.data.zero(BS, 2 * BS);
    assert.equal(posts(proxy).length, 1);
    assert.deepEqual(await listKeys(moto, 'disk', prefix), [key(prefix, 0), key(prefix, 3)]);
    await shared.top.close();

    await seed(prefix, [0, 3]);
    // The guard straight over the backend (no zero cache to answer reads of trimmed blocks): it
    // remembers them as zeros, so an old answer is caught, and spaces a trim after a write.
    const ecProtect = { cacheSize: 100, cacheTimeMs: 10_000, minWriteDelayMs: 300, initialRetryPauseMs: 20, maxRetryPauseMs: 400 };
    const stats = new HttpStats();
    const backend = new BlockBackend(
      s3Objects(moto, proxy.endpoint, { prefix, stats }),
      { prefix, blockHashPrefix: false, blockSize: BS, numBlocks: 4, codec: createBlockCodec({ blockSize: BS }), encodeWrites: false },
      stats,
    );
    const guard = new EcProtect(backend, ecProtect, silentLogger);
    const layer = new PartialBlockLayer(guard);
    const stat = (name) => Object.fromEntries([...guard.statsLines(), ...guard.extraStatsLines()])[name];
    await layer.write(0, randomBytes(BS));
    const started = Date.now();
    await layer.zero(0, BS);
    assert.ok(Date.now() - started >= 250, '--minWriteDelay after the write of block 0');
    assert.notEqual(stat('md5_cache_write_delays'), '0.000 sec');
    await guard.readBlock(3); // the proxy keeps this answer, to give it again below
    await layer.zero(3 * BS, BS);
    assert.equal(stat('md5_cache_current_size'), '2 blocks', 'blocks 0 and 3 remembered');
    proxy.serveStale(key(prefix, 3), 1);
    const back = Buffer.alloc(BS);
    await layer.read(3 * BS, back);
    assert.ok(
      back.every((b) => b === 0),
      'zeros, after the old data the store answered first',
    );
    assert.equal(stat('md5_cache_stale_reads'), 1, 'the old answer was caught: the guard expected zeros');
    assert.deepEqual(await listKeys(moto, 'disk', prefix), []);
    await guard.close();
  },
);

// ---- s3rver: its multi-object delete, through --erase ------------------------------------------

test('--erase deletes in multi-object deletes of up to 1000 keys (s3rver)', { timeout: 120000 }, async () => {
  const server = await startS3Server({ buckets: ['disk'] });
  const front = await startRecordingProxy({ target: server });
  try {
    const N = 1205;
    for (let n = 0; n < N; n++) await putObject(server, 'disk', key('er/', n), Buffer.alloc(512, 1));
    await putObject(server, 'disk', 'er/unrelated.txt', 'keep me');
    front.clear();
    const r = await runCli([
      `--baseURL=${front.endpoint}/`,
      '--accessId=S3RVER',
      '--accessKey=S3RVER',
      '--prefix=er/',
      '--erase',
      '--force',
      'disk',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`erased ${N} blocks`));
    const bulk = posts(front);
    assert.deepEqual(
      bulk.map((q) => keysIn(q.body).length).sort((a, b) => b - a),
      [1000, 205],
    );
    assert.ok(bulk.every((q) => q.status === 200));
    // The only single DELETE is the mounted flag's.
    assert.deepEqual(
      front.requests.filter((q) => q.method === 'DELETE').map((q) => q.key),
      ['er/s3backer-mounted'],
    );
    assert.deepEqual(await listKeys(server, 'disk', 'er/'), ['er/unrelated.txt']);
  } finally {
    await front.stop();
    await server.stop();
  }
});
