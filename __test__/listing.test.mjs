// --listBlocks runs in the background: the mount is served while N listers go over disjoint key
// ranges (StartAfter), slowed, failed or hung by the recording proxy in front of s3rver. Whatever
// is written meanwhile survives the listing; a failed listing leaves a working mount; an unmount
// stops it. --erase lists with the same listers.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startS3Server, listKeys, putObject } from './helpers/s3server.mjs';
import { useRecordedS3 } from './helpers/recordingProxy.mjs';
import * as io from './helpers/blockIO.mjs';
import { holdWriter } from './helpers/holdWriter.mjs';
import { startMount, runCli, workdir, run, isMounted, unstamped } from './helpers/ours.mjs';
import {
  LIST_REQUEST,
  listRequests,
  mostAtOnce,
  startAfterOf,
  statsNow,
  waitForListing,
  waitForLog,
  waitUntil,
} from './helpers/listing.mjs';

const require = createRequire(import.meta.url);
const { blockHash, hex8 } = require('../dist/format/blockNames.js');

const env = useRecordedS3('listing', { before, after, workdir, startS3Server });
const keys = ['--accessId=S3RVER', '--accessKey=S3RVER'];
const via = (p) => [`--baseURL=${p.endpoint}/`, ...keys];
const direct = () => [`--baseURL=${env.server.endpoint}/`, ...keys];
const BS = 4096;
// Short retries: a listing that keeps failing gives up after 4 attempts (pauses 20 + 40 + 80 ms).
const geometry = (blocks) => ['--blockSize=4k', `--size=${(blocks * BS) / 1024}k`, '--initialRetryPause=20', '--maxRetryPause=200'];
const file = () => join(env.w.mnt, 'file');
const writeBlock = (n, data) => io.writeAt(env.w.root, file(), n * BS, data, { bs: BS });
const readBlock = (n) => io.readAt(env.w.root, file(), n * BS, BS, { bs: BS });
const ZERO = Buffer.alloc(BS);
const blockKey = (prefix, n, hashed = false) => `${prefix}${hashed ? `${hex8(blockHash(n))}-` : ''}${hex8(n)}`;
const listOnly = (prefix, startAfter) =>
  new RegExp(`^GET /disk/?\\?(.*&)?list-type=2.*start-after=${encodeURIComponent(prefix + startAfter)}(&|$)`);

/** Stores each block straight into s3rver (no mount, no proxy); returns block number -> data. */
async function seed(prefix, blocks, hashed = false) {
  const model = new Map();
  for (const n of blocks) {
    const data = randomBytes(BS);
    model.set(n, data);
    await putObject(env.server, 'disk', blockKey(prefix, n, hashed), data);
  }
  return model;
}

/** Every block of the disk, read through a fresh mount straight against s3rver, equals the model. */
async function assertStored(prefix, numBlocks, model, extra = []) {
  const content = await io.contentInS3(env.server, env.w, prefix, numBlocks * BS, [...geometry(numBlocks), ...extra]);
  for (let n = 0; n < numBlocks; n++) {
    assert.ok(content.subarray(n * BS, (n + 1) * BS).equals(model.get(n) ?? ZERO), `block ${n} as written`);
  }
}

test('the mount is served while a slow listing runs, and nothing written meanwhile is undone by it', { timeout: 180000 }, async () => {
  const p = env.proxy;
  const prefix = 'bg/';
  const N = 64; // 4 listers: blocks [0,16) [16,32) [32,48) [48,64)
  const model = await seed(prefix, [1, 20, 40, 50, 60]);
  // The last range's answer is S3's look at it now, arriving 8 s later: anything written to those
  // blocks in between is missing from it.
  p.inject('slow', { only: listOnly(prefix, '0000002f'), delayMs: 8000 });
  p.clear();
  const m = await startMount(
    [...via(p), `--prefix=${prefix}`, ...geometry(N), '--listBlocks', '--listBlocksThreads=4', 'disk', env.w.mnt],
    env.w.mnt,
  );
  try {
    // The first three ranges are learned as they end (15 zero blocks each), the last still runs.
    const early = await waitUntil('three ranges learned', async () => {
      const s = await statsNow(env.w.mnt);
      return Number.parseFloat(s.zero_block_cache_size) >= 45 && s;
    });
    assert.equal(early.zero_block_cache_listing, 'running');
    assert.equal(Number.parseFloat(early.zero_block_cache_size), 45, 'no block of the unlisted range is known zero yet');
    const slow = listRequests(p).find((q) => startAfterOf(q) === `${prefix}0000002f`);
    assert.ok(slow, 'the last range was asked for');

    // Reads and writes are served meanwhile: a block in a range learned before the write, one in
    // the range whose (stale) answer is on its way, a seeded block zeroed, reads of both kinds.
    assert.ok((await readBlock(40)).equals(model.get(40)));
    assert.ok((await readBlock(50)).equals(model.get(50)), 'a block of the range still being listed');
    assert.ok((await readBlock(58)).equals(ZERO));
    for (const n of [5, 55]) {
      model.set(n, randomBytes(BS));
      await writeBlock(n, model.get(n));
    }
    model.delete(60);
    await writeBlock(60, ZERO);
    assert.equal(slow.doneAt, undefined, 'all of this happened before the last range was answered');

    const done = await waitForListing(env.w.mnt);
    assert.match(m.stderr(), /found 5 non-zero blocks in \d+\.\d s/);
    // Known zero now: all but the five blocks with data (1, 5, 20, 40, 50 and 55 hold data; 60 was zeroed).
    assert.equal(Number.parseFloat(done.zero_block_cache_size), N - 6);
    for (const [n, data] of model) assert.ok((await readBlock(n)).equals(data), `block ${n} reads back after the listing`);
    assert.ok((await readBlock(60)).equals(ZERO), 'the zeroed block stays zero');
  } finally {
    p.clearFaults();
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  await assertStored(prefix, N, model);
});

/** Keys that are no blocks of this disk: each would make a wrong block "found" if parsed loosely. */
async function seedJunk(prefix, hashed, numBlocks) {
  const junk = [`${prefix}notablock`, `${prefix}0000000A`, `${prefix}${hex8(numBlocks + 3)}`, `${prefix}${hex8(7)}x`];
  if (hashed) junk.push(`${prefix}${hex8(blockHash(7) ^ 1)}-${hex8(7)}`, `${prefix}${hex8(7)}`);
  for (const key of junk) await putObject(env.server, 'disk', key, 'not a block');
}

for (const hashed of [false, true]) {
  test(
    `N listers run side by side over disjoint ranges${hashed ? ' of the hash space' : ''} and find what one lister finds`,
    { timeout: 180000 },
    async () => {
      const p = env.proxy;
      const prefix = hashed ? 'parh/' : 'par/';
      const N = 256;
      const stored = [0, 2, 63, 64, 100, 127, 128, 129, 191, 192, 200, 254, 255, ...Array.from({ length: 30 }, (_, i) => 3 + i * 8)];
      const model = await seed(prefix, stored, hashed);
      await seedJunk(prefix, hashed, N);
      const expectedKeys = [...model.keys()].map((n) => blockKey(prefix, n, hashed)).sort();
      const base = [...via(p), `--prefix=${prefix}`, ...geometry(N), ...(hashed ? ['--blockHashPrefix'] : []), '--listBlocks'];
      const starts = hashed ? [null, '3fffffff', '7fffffff', 'bfffffff'] : [null, '0000003f', '0000007f', '000000bf'];
      const found = {};
      for (const [name, threads] of [
        ['serial', ['--listBlocksThreads=1']],
        ['parallel', ['-o', 'listBlocksThreads=4']],
      ]) {
        p.clear();
        // Every answer held a second: listers that run side by side overlap.
        p.inject('slow', { only: LIST_REQUEST, delayMs: 1000, count: 100 });
        const m = await startMount([...base, ...threads, 'disk', env.w.mnt], env.w.mnt);
        try {
          const stats = await waitForListing(env.w.mnt);
          p.clearFaults();
          assert.match(m.stderr(), new RegExp(`found ${model.size} non-zero blocks in`), name);
          assert.equal(Number.parseFloat(stats.zero_block_cache_size), N - model.size, `${name}: every other block known zero`);
          const lists = listRequests(p);
          const afters = lists
            .map(startAfterOf)
            .map((a) => a && a.slice(prefix.length))
            .sort();
          if (name === 'serial') assert.deepEqual(afters, [null], 'one lister, from the start');
          else {
            assert.deepEqual(afters, [...starts].sort(), 'one request per range, each starting after the key before it');
            assert.equal(mostAtOnce(lists), 4, 'all four in flight at once');
          }
          // Reading the whole disk fetches exactly the blocks found (but block 0, which the mount
          // fetched as it started): the rest are known zero.
          const gets = () => new Set(p.requests.filter((q) => q.method === 'GET' && q.key !== '').map((q) => q.key));
          assert.ok(gets().has(blockKey(prefix, 0, hashed)), `${name}: block 0 fetched at the mount's start`);
          p.clear();
          const content = await io.readAt(env.w.root, file(), 0, N * BS);
          for (let n = 0; n < N; n++) assert.ok(content.subarray(n * BS, (n + 1) * BS).equals(model.get(n) ?? ZERO), `${name}: block ${n}`);
          found[name] = [...gets()].sort();
          assert.deepEqual(
            found[name],
            expectedKeys.filter((k) => k !== blockKey(prefix, 0, hashed)),
            `${name}: GETs for the found blocks only`,
          );
        } finally {
          p.clearFaults();
          assert.deepEqual(await m.stop(), { code: 0, signal: null });
        }
      }
      assert.deepEqual(found.parallel, found.serial);
    },
  );
}

test(
  'a listing that fails leaves the mount working and correct, warned once; only whole ranges are learned',
  { timeout: 180000 },
  async () => {
    const p = env.proxy;
    const prefix = 'fail/';
    const N = 64;
    const model = await seed(prefix, [3, 20, 40, 60]);
    const flags = [...via(p), `--prefix=${prefix}`, ...geometry(N), '--listBlocks', '--listBlocksThreads=4', 'disk', env.w.mnt];
    for (const [name, only, failed] of [
      ['every range', LIST_REQUEST, [0, 1, 2, 3]],
      ['the third range', listOnly(prefix, '0000001f'), [2]],
    ]) {
      // What each range would teach: its blocks without data. A range that ends is learned whole,
      // the failed ones never (and the others may be stopped by the failure before they end).
      const teaches = [0, 1, 2, 3].filter((r) => !failed.includes(r)).map((r) => 16 - [...model.keys()].filter((n) => n >> 4 === r).length);
      const possible = teaches.reduce((sums, t) => [...sums, ...sums.map((x) => x + t)], [0]);
      p.inject('status', { status: 500, only, count: 1000 });
      p.clear();
      const m = await startMount(flags, env.w.mnt);
      try {
        const stats = await waitForListing(env.w.mnt, 'failed');
        p.clearFaults();
        const warnings = m
          .stderr()
          .split('\n')
          .filter((l) => /listing the blocks failed/.test(l))
          .map(unstamped);
        assert.equal(warnings.length, 1, `${name}: warned once: ${m.stderr()}`);
        assert.match(
          warnings[0],
          /^s3backer: warn: listing the blocks failed after \d+\.\d s \(LIST fail\/.* failed after 4 attempts: .*\); blocks it did not cover are read from the store$/,
        );
        const known = Number.parseFloat(stats.zero_block_cache_size);
        assert.ok(possible.includes(known), `${name}: ${known} blocks known zero, not one of ${possible}`);
        p.clear();
        for (const [n, data] of model) assert.ok((await readBlock(n)).equals(data), `${name}: block ${n}`);
        assert.ok((await readBlock(35)).equals(ZERO));
        assert.ok(
          p.requests.some((q) => q.method === 'GET' && q.key === blockKey(prefix, 35)),
          `${name}: an absent block of the failed range is asked for`,
        );
        model.set(name === 'every range' ? 10 : 36, randomBytes(BS));
        for (const [n, data] of model) await writeBlock(n, data);
        for (const [n, data] of model) assert.ok((await readBlock(n)).equals(data), `${name}: block ${n} after writes`);
      } finally {
        p.clearFaults();
        assert.deepEqual(await m.stop(), { code: 0, signal: null });
      }
    }
    await assertStored(prefix, N, model);
  },
);

test('an unmount during the listing stops it: the process ends cleanly and the data is stored', { timeout: 120000 }, async () => {
  const p = env.proxy;
  const prefix = 'stop/';
  const N = 64;
  const model = await seed(prefix, [2, 33]);
  // Never answered, and a request timeout longer than the unmount is given: only stopping ends it.
  p.inject('hang', { only: LIST_REQUEST, count: 100 });
  const m = await startMount(
    [...via(p), `--prefix=${prefix}`, ...geometry(N), '--timeout=300', '--listBlocks', 'disk', env.w.mnt],
    env.w.mnt,
  );
  try {
    await waitUntil('the listers to ask', () => listRequests(p).length >= 1);
    model.set(9, randomBytes(BS));
    await writeBlock(9, model.get(9));
    assert.ok((await readBlock(33)).equals(model.get(33)));
    assert.equal((await statsNow(env.w.mnt)).zero_block_cache_listing, 'running');
  } finally {
    p.clearFaults(); // the ones not taken yet: those taken hang until the unmount stops them
    assert.deepEqual(await m.stop({ timeoutMs: 30000 }), { code: 0, signal: null });
  }
  assert.match(m.stderr(), /listing of the blocks stopped by the unmount after \d+\.\d s/);
  assert.doesNotMatch(m.stderr(), /listing the blocks failed|found \d+ non-zero/);
  await assertStored(prefix, N, model);
});

test('blocks a cache file recovers dirty are not called zeros by the listing before they are uploaded', { timeout: 180000 }, async () => {
  const prefix = 'rec/';
  const N = 64;
  const cacheFile = join(env.w.root, 'rec.cache');
  // Uploads wait ten minutes: the recovered blocks stay dirty while the listing runs.
  const flags = [...direct(), `--prefix=${prefix}`, ...geometry(N), `--blockCacheFile=${cacheFile}`, '--blockCacheWriteDelay=600000'];
  let m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const blocks = new Map([
    [5, randomBytes(BS)],
    [30, randomBytes(BS)],
  ]);
  const writer = await holdWriter(
    file(),
    [...blocks].map(([n, data]) => [n * BS, data]),
    env.w.root,
  );
  await writer.written;
  m.child.kill('SIGKILL');
  await m.exited;
  writer.child.kill('SIGKILL');
  await run('umount', ['-l', env.w.mnt]).catch(() => {});
  assert.deepEqual(await listKeys(env.server, 'disk', prefix), [`${prefix}s3backer-mounted`], 'nothing uploaded before the crash');

  m = await startMount([...flags, '--blockCacheRecoverDirtyBlocks', '--listBlocks', 'disk', env.w.mnt], env.w.mnt);
  try {
    const stats = await waitForListing(env.w.mnt);
    assert.equal(Number.parseFloat(stats.zero_block_cache_size), N - blocks.size);
    for (const [n, data] of blocks) assert.ok((await readBlock(n)).equals(data), `recovered block ${n} reads back`);
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  await assertStored(prefix, N, blocks);
});

test('--listBlocksThreads must be a whole number of at least 1: one line, nothing mounted', { timeout: 60000 }, async () => {
  for (const [args, message] of [
    [['--listBlocksThreads=0'], /^s3backer: --listBlocksThreads: 0 is out of range \(at least 1\)$/],
    [['--listBlocksThreads=many'], /^s3backer: --listBlocksThreads: "many" is not a whole number$/],
    [['-o', 'listBlocksThreads=0'], /^s3backer: --listBlocksThreads: 0 is out of range \(at least 1\)$/],
    [['--listBlocksThreads=-2'], /^s3backer: --listBlocksThreads: "-2" is not a whole number$/],
  ]) {
    const r = await runCli(['-f', '--test', '--size=1m', '--listBlocks', ...args, env.w.store, env.w.mnt]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trim(), message);
    assert.equal(await isMounted(env.w.mnt), false);
  }
});

for (const hashed of [false, true]) {
  test(
    `--erase lists with the same parallel listers${hashed ? ' (hash prefix)' : ''}, and deletes blocks past the disk's size too`,
    { timeout: 120000 },
    async () => {
      const p = env.proxy;
      const prefix = hashed ? 'erh/' : 'er/';
      const N = 256;
      const blocks = [0, 1, 70, 130, 200, 255, 300];
      for (const n of blocks) {
        const metadata = n === 0 ? { 's3backer-blocksize': String(BS), 's3backer-filesize': String(N * BS) } : undefined;
        await putObject(env.server, 'disk', blockKey(prefix, n, hashed), randomBytes(BS), { metadata });
      }
      await putObject(env.server, 'disk', `${prefix}unrelated.txt`, 'keep me');
      p.clear();
      const r = await runCli([
        ...via(p),
        `--prefix=${prefix}`,
        ...(hashed ? ['--blockHashPrefix'] : []),
        '--listBlocksThreads=4',
        '--erase',
        '--force',
        'disk',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`erased ${blocks.length} blocks`));
      const afters = listRequests(p)
        .map(startAfterOf)
        .map((a) => a && a.slice(prefix.length))
        .sort();
      assert.deepEqual(afters, (hashed ? [null, '3fffffff', '7fffffff', 'bfffffff'] : [null, '0000003f', '0000007f', '000000bf']).sort());
      assert.deepEqual(await listKeys(env.server, 'disk', prefix), [`${prefix}unrelated.txt`]);
    },
  );
}
