// Faults between s3backer and S3, injected by the recording proxy in front of s3rver: bursts of
// 500/503 SlowDown, connections dropped before an answer or halfway through a body, requests that
// hang past --timeout, slow answers, the endpoint going away, its name failing to resolve
// (helpers/flaky-dns.cjs), the bucket deleted and made again. I/O continues once a fault clears
// and every byte written is in S3 afterwards (checked by a fresh mount straight against s3rver);
// a fault outlasting the retry budget fails reads with EIO instead of hanging, and keeps the
// unsaved data dirty until the endpoint is back, through an unmount too.
import test from 'node:test';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server, makeClient, listKeys, deleteObject, getObject } from './helpers/s3server.mjs';
import { useRecordedS3 } from './helpers/recordingProxy.mjs';
import * as io from './helpers/blockIO.mjs';
import { startMount, workdir, run, s3Flags, isMounted, REPO } from './helpers/ours.mjs';

const env = useRecordedS3('faults', { before, after, workdir, startS3Server });
const keys = ['--accessId=S3RVER', '--accessKey=S3RVER'];
const via = (p) => [`--baseURL=${p.endpoint}/`, ...keys];
const BS = 65536;
const sha = (b) => createHash('sha256').update(b).digest('hex');
const writeAt = (file, offset, data, options) => io.writeAt(env.w.root, file, offset, data, options);
const readAt = (file, offset, length) => io.readAt(env.w.root, file, offset, length);
/** What S3 holds, read through a fresh mount straight against s3rver (no proxy, no faults). */
const contentInS3 = (prefix, length) => io.contentInS3(env.server, env.w, prefix, length);

test(
  'transient faults: writes and reads go on through 5xx bursts, resets, hangs, slow and cut answers; every byte reaches S3',
  { timeout: 180000 },
  async () => {
    const p = env.proxy;
    const data = randomBytes(32 * BS); // 2 MiB over 32 blocks
    const m = await startMount(
      [
        ...via(p),
        '--prefix=t/',
        '--blockSize=64k',
        '--size=4m',
        '--timeout=1',
        '--initialRetryPause=20',
        '--maxRetryPause=20000',
        '--blockCacheSize=8',
        '--blockCacheWriteDelay=0',
        'disk',
        env.w.mnt,
      ],
      env.w.mnt,
    );
    try {
      const file = join(env.w.mnt, 'file');
      const puts = /^PUT \/disk\/t\/0/;
      p.inject('status', { count: 6, only: puts, status: 503 });
      p.inject('status', { count: 3, only: puts, status: 500 });
      p.inject('reset', { count: 4, only: puts });
      p.inject('hang', { count: 2, only: puts });
      p.inject('slow', { count: 4, only: puts, delayMs: 300 });
      await writeAt(file, 0, data);
      assert.equal(p.pendingFaults(), 0, 'every upload fault was met');

      // Reads of blocks the 8-block cache has dropped go to S3, through the same kinds of faults.
      // No more than 9 of them: the first read's GET runs alone (read-ahead starts later) and can
      // meet every one in a row, and --maxRetryPause=20000 allows it 10 attempts.
      const gets = /^GET \/disk\/t\/0/;
      p.inject('status', { count: 2, only: gets, status: 503 });
      p.inject('reset', { count: 2, only: gets });
      p.inject('cut', { count: 3, only: gets });
      p.inject('hang', { count: 1, only: gets });
      const back = await readAt(file, 0, data.length);
      assert.equal(sha(back), sha(data), 'read back through the faults');
      assert.equal(p.pendingFaults(), 0, 'every download fault was met');
      const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
      // One failed attempt per fault: 11 error statuses, and 12 without an answer (6 resets, 3 cut
      // bodies, 3 hangs past --timeout); the slow answers came within the timeout. A reset met on a
      // kept-alive socket is sent again at once on a new one; every other failed attempt is retried.
      const count = (name) => Number(new RegExp(`^${name}\\s+(\\d+)$`, 'm').exec(stats)?.[1]);
      const resent = count('http_resent_on_new_connection');
      assert.ok(resent <= 6, `${resent} resent: only resets qualify`);
      assert.equal(count('http_num_retries') + resent, 23);
      assert.match(stats, /^http_5xx_error\s+11$/m);
      assert.equal(count('curl_other_error') + resent, 9);
      assert.match(stats, /^curl_timeouts\s+3$/m);
      assert.match(stats, /^http_other_error\s+0$/m, "upstream's: answers with a status outside 300-599");
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    assert.deepEqual(p.injected, { status: 11, reset: 6, hang: 3, slow: 4, cut: 3 });
    assert.equal(sha(await contentInS3('t/', data.length)), sha(data), 'all of it is in S3');
  },
);

test(
  'the endpoint gone longer than the retry budget: EIO instead of a hang, dirty data kept and uploaded once it is back',
  { timeout: 180000 },
  async () => {
    const p = env.proxy;
    const before = randomBytes(4 * BS);
    const unsaved = randomBytes(4 * BS);
    const m = await startMount(
      [
        ...via(p),
        '--prefix=g/',
        '--blockSize=64k',
        '--size=4m',
        '--timeout=1',
        '--initialRetryPause=50',
        '--maxRetryPause=400',
        '--blockCacheSize=16',
        '--blockCacheWriteDelay=200',
        'disk',
        env.w.mnt,
      ],
      env.w.mnt,
    );
    const file = join(env.w.mnt, 'file');
    try {
      await writeAt(file, 0, before);
      await p.down();
      // Written while S3 is away: the data lands in the cache; the writer's close (a FUSE flush)
      // cannot store it and says so.
      await assert.rejects(writeAt(file, 8 * BS, unsaved, { fsync: false }), /Input\/output error/);
      // A block never read: its GET fails within the retry budget, as EIO.
      let started = Date.now();
      await assert.rejects(readAt(file, 20 * BS, BS), /Input\/output error/);
      assert.ok(Date.now() - started < 15000, `the read failed after ${Date.now() - started} ms, not hung`);
      // fsync cannot store the dirty blocks either: it fails, and they stay dirty.
      started = Date.now();
      await assert.rejects(run('sync', ['-d', file]), /Input\/output error/);
      assert.ok(Date.now() - started < 15000);
      const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
      assert.match(stats, /^block_cache_dirty_ratio\s+0\.25000000$/m, '4 of 16 slots still dirty');
      assert.ok(Number(/^block_cache_upload_errors\s+(\d+)$/m.exec(stats)[1]) >= 1);
      // Cached data still reads while the endpoint is away (a reader's close does not wait on it).
      assert.equal(sha(await readAt(file, 8 * BS, unsaved.length)), sha(unsaved));

      await p.up();
      await run('sync', ['-d', file]); // now it can: the kept blocks upload
    } finally {
      if (!p.listening) await p.up().catch(() => {});
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    const stored = await contentInS3('g/', 12 * BS);
    assert.equal(sha(stored.subarray(0, 4 * BS)), sha(before));
    assert.equal(sha(stored.subarray(8 * BS, 12 * BS)), sha(unsaved), 'the blocks written while S3 was away are there');
  },
);

test('a permanent 403 fails reads with EIO within the retry budget', { timeout: 60000 }, async () => {
  const p = env.proxy;
  const m = await startMount(
    [...via(p), '--prefix=d/', '--blockSize=64k', '--size=1m', '--initialRetryPause=50', '--maxRetryPause=400', 'disk', env.w.mnt],
    env.w.mnt,
  );
  try {
    p.inject('status', { count: 50, only: /^GET \/disk\/d\/0/, status: 403 });
    const started = Date.now();
    await assert.rejects(readAt(join(env.w.mnt, 'file'), 5 * BS, BS), /Input\/output error/);
    assert.ok(Date.now() - started < 10000, `failed after ${Date.now() - started} ms`);
    const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    assert.ok(Number(/^http_forbidden\s+(\d+)$/m.exec(stats)[1]) >= 3, stats);
  } finally {
    p.clearFaults();
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});

/** Resolves once `pattern` shows up in the mount's output (or rejects after `ms`). */
async function waitForOutput(m, pattern, ms = 30000) {
  const deadline = Date.now() + ms;
  while (!pattern.test(m.stderr())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} in: ${m.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Writes four blocks while the endpoint is away: they stay dirty in the cache (the close says EIO). */
async function writeWhileDown(p, prefix, extra) {
  const m = await startMount(
    [
      ...via(p),
      `--prefix=${prefix}`,
      '--blockSize=64k',
      '--size=4m',
      '--timeout=1',
      '--initialRetryPause=50',
      '--maxRetryPause=400',
      '--blockCacheSize=16',
      ...extra,
      'disk',
      env.w.mnt,
    ],
    env.w.mnt,
  );
  const data = randomBytes(4 * BS);
  await p.down();
  await assert.rejects(writeAt(join(env.w.mnt, 'file'), 0, data, { fsync: false }), /Input\/output error/);
  return { m, data };
}

test('SIGTERM while the endpoint is away: the unmount waits, and stores everything once it is back', { timeout: 180000 }, async () => {
  const p = env.proxy;
  const { m, data } = await writeWhileDown(p, 'w/', []);
  try {
    m.child.kill('SIGTERM');
    await waitForOutput(m, /unmount: 4 blocks not stored yet .*retrying until the store takes them/);
    assert.equal(await isMounted(env.w.mnt), false, 'the mount itself is gone (detached)');
    let ended = false;
    m.exited.then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(ended, false, 'still holding the unsaved blocks, not exited');
    // A second signal while the blocks are merely uploading would not drop them; here the store
    // refuses them, so it would: not sent. The endpoint comes back instead.
    await p.up();
    const timer = setTimeout(() => m.child.kill('SIGKILL'), 60000);
    assert.deepEqual(await m.exited, { code: 0, signal: null }, m.stderr());
    clearTimeout(timer);
  } finally {
    if (!p.listening) await p.up().catch(() => {});
  }
  assert.match(m.stderr(), /unmounted/);
  // contentInS3 mounts without --force: the flag was cleared too.
  assert.equal(sha(await contentInS3('w/', 4 * BS)), sha(data), 'every block reached S3');
});

test(
  'giving up on an unmount that waits for the endpoint: with a cache file the blocks are kept there and the next mount uploads them',
  { timeout: 180000 },
  async () => {
    const p = env.proxy;
    const cf = join(env.w.root, 'outage.cache');
    const { m, data } = await writeWhileDown(p, 'a/', [`--blockCacheFile=${cf}`]);
    try {
      m.child.kill('SIGTERM');
      await waitForOutput(m, /unmount: 4 blocks not stored yet .*kept in the cache file/);
      m.child.kill('SIGINT');
      const result = await m.exited;
      assert.deepEqual(result, { code: 1, signal: null });
      assert.match(
        m.stderr(),
        /gave up storing 4 blocks: they are kept in the cache file .*outage\.cache; mount again with --blockCacheRecoverDirtyBlocks/,
      );
    } finally {
      await p.up();
    }
    const again = await startMount(
      [
        ...s3Flags(env.server),
        '--prefix=a/',
        '--blockSize=64k',
        '--size=4m',
        '--blockCacheSize=16',
        `--blockCacheFile=${cf}`,
        '--blockCacheRecoverDirtyBlocks',
        'disk',
        env.w.mnt,
      ],
      env.w.mnt,
    );
    assert.match(again.stderr(), /taking over/);
    assert.match(again.stderr(), /4 dirty blocks to upload/);
    assert.deepEqual(await again.stop(), { code: 0, signal: null });
    assert.equal(sha(await contentInS3('a/', 4 * BS)), sha(data), 'recovered into S3');
  },
);

test('a name that stops resolving for a while: writes and reads go on once it resolves again', { timeout: 180000 }, async () => {
  const p = env.proxy;
  const dnsDown = join(env.w.root, 'dns-down');
  const childEnv = { ...process.env, S3B_DNS_DOWN: dnsDown, NODE_OPTIONS: `--require ${join(REPO, '__test__/helpers/flaky-dns.cjs')}` };
  const m = await startMount(
    [
      `--baseURL=http://s3.flaky.test:${p.port}/`,
      ...keys,
      '--prefix=n/',
      '--blockSize=64k',
      '--size=4m',
      '--timeout=1',
      '--initialRetryPause=200',
      '--maxRetryPause=10000',
      '--blockCacheSize=8',
      '--blockCacheWriteDelay=0',
      'disk',
      env.w.mnt,
    ],
    env.w.mnt,
    { env: childEnv },
  );
  const data = randomBytes(32 * BS);
  const file = join(env.w.mnt, 'file');
  /** The name fails to resolve for `ms`, starting now. */
  const outage = async (ms) => {
    await writeFile(dnsDown, '');
    setTimeout(() => rm(dnsDown, { force: true }), ms);
  };
  try {
    // 32 blocks uploaded many at once need more sockets than the mount opened: new lookups.
    await outage(1500);
    await writeAt(file, 0, data);
    const failedLookups = async () => (await readFile(`${dnsDown}.log`, 'utf8').catch(() => '')).split('\n').length - 1;
    const duringWrites = await failedLookups();
    assert.ok(duringWrites >= 1, 'the uploads met the outage');
    // Reads of the blocks the 8-block cache dropped, many at once again (read-ahead).
    await new Promise((r) => setTimeout(r, 4500)); // idle sockets retire after 4 s: all need a lookup
    await outage(1500);
    assert.equal(sha(await readAt(file, 0, data.length)), sha(data), 'read back across the outage');
    assert.ok((await failedLookups()) > duringWrites, 'the reads met the outage');
    const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    assert.ok(Number(/^http_num_retries\s+(\d+)$/m.exec(stats)[1]) >= 2, stats);
  } finally {
    await rm(dnsDown, { force: true });
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  assert.equal(sha(await contentInS3('n/', data.length)), sha(data), 'all of it is in S3');
});

test(
  'the bucket deleted under a mount: reads fail with EIO (never zeros), writes stay dirty and upload once it exists again',
  { timeout: 180000 },
  async () => {
    const { CreateBucketCommand, DeleteBucketCommand } = await import('@aws-sdk/client-s3');
    const client = makeClient(env.server);
    await client.send(new CreateBucketCommand({ Bucket: 'doomed' }));
    const m = await startMount(
      [
        ...s3Flags(env.server),
        '--blockSize=64k',
        '--size=1m',
        '--timeout=2',
        '--initialRetryPause=50',
        '--maxRetryPause=400',
        '--blockCacheSize=4',
        '--readAhead=0',
        'doomed',
        env.w.mnt,
      ],
      env.w.mnt,
    );
    const file = join(env.w.mnt, 'file');
    const later = randomBytes(2 * BS);
    try {
      await writeAt(file, 0, randomBytes(2 * BS));
      assert.equal(
        (await readAt(file, 10 * BS, BS)).equals(Buffer.alloc(BS)),
        true,
        'an unwritten block reads as zeros while the bucket is there',
      );
      for (const key of await listKeys(env.server, 'doomed')) await deleteObject(env.server, 'doomed', key);
      await client.send(new DeleteBucketCommand({ Bucket: 'doomed' }));

      await assert.rejects(readAt(file, 11 * BS, BS), /Input\/output error/, 'a missing bucket is not a block of zeros');
      await assert.rejects(writeAt(file, 4 * BS, later), /Input\/output error/, 'fsync cannot store into a missing bucket');
      assert.equal(sha(await readAt(file, 4 * BS, later.length)), sha(later), 'the unsaved blocks still read from the cache');

      await client.send(new CreateBucketCommand({ Bucket: 'doomed' }));
      await run('sync', ['-d', file]);
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    // Blocks stored before the deletion went with the bucket; clean cached copies are not re-sent.
    for (const i of [0, 1]) assert.equal(await getObject(env.server, 'doomed', `0000000${i}`), null);
    for (const i of [4, 5]) {
      const stored = await getObject(env.server, 'doomed', `0000000${i}`);
      assert.ok(stored?.body.equals(later.subarray((i - 4) * BS, (i - 3) * BS)), `block ${i} is in the bucket again`);
    }
  },
);
