// The cache file crosses between ours and upstream's C s3backer in both directions: dirty blocks
// a SIGKILLed mount left are recovered by the other program (--blockCacheRecoverDirtyBlocks, the
// bucket's mount token matching the file's), and clean slots one wrote are verified and reused by
// the other without a download. Debian's 1.5.4 cache file opens in ours too.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server } from './helpers/s3server.mjs';
import { startMount, runCli, workdir, run, s3Flags, isMounted } from './helpers/ours.mjs';
import { holdWriter } from './helpers/holdWriter.mjs';
import { NEWEST_UPSTREAM_BIN, NEWEST_UPSTREAM_SKIP, UPSTREAM_BIN, startUpstream, stopUpstream } from './helpers/upstream.mjs';

const env = useS3Server('cachefile-interop', { before, after, workdir });
const BS = 65536;
const geometry = ['--blockSize=64k', '--size=4m', '--blockCacheSize=16'];

async function inspect(cf) {
  const res = await runCli(['cache', 'inspect', '--json', '--blocks', cf]);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout);
}

/** The disk's first `length` bytes through a fresh mount of ours without any cache. */
async function readBack(prefix, length) {
  const m = await startMount(
    [...s3Flags(env.server), `--prefix=${prefix}`, '--blockSize=64k', '--size=4m', '--blockCacheSize=0', 'disk', env.w.mnt],
    env.w.mnt,
  );
  const data = (await readFile(join(env.w.mnt, 'file'))).subarray(0, length);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  return data;
}

/** Kills a mount's process and the writer holding its file open, and clears the dead mount. */
async function crash(child, exited, writer) {
  child.kill('SIGKILL');
  await exited;
  writer.child.kill('SIGKILL');
  await run('umount', ['-l', env.w.mnt]).catch(() => {});
  assert.equal(await isMounted(env.w.mnt), false);
}

/** Three blocks out of order (a sequential writer would have the finished ones uploaded at once). */
function dirtyWrites() {
  const blocks = [randomBytes(BS), randomBytes(BS), randomBytes(BS)];
  const model = Buffer.alloc(4 * BS);
  blocks.forEach((b, i) => b.copy(model, (i + 1) * BS));
  return { model, writes: [1, 0, 2].map((i) => [(i + 1) * BS, blocks[i]]) };
}

/** Writes `data` at the start of the mounted file, synced, from another process. */
async function writeInto(data, name) {
  const src = join(env.w.root, name);
  await writeFile(src, data);
  await run('dd', [`if=${src}`, `of=${join(env.w.mnt, 'file')}`, 'bs=64k', 'conv=notrunc,fsync', 'status=none']);
}

const statOf = (text, name) => Number(new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(text)?.[1]);

test('dirty blocks of a SIGKILLed upstream are recovered by ours', { skip: NEWEST_UPSTREAM_SKIP, timeout: 180000 }, async () => {
  const cf = join(env.w.root, 'from-upstream.cache');
  const up = startUpstream(
    env.server,
    'disk',
    env.w.mnt,
    ['--prefix=a/', ...geometry, `--blockCacheFile=${cf}`, '--blockCacheWriteDelay=600000'],
    {
      bin: NEWEST_UPSTREAM_BIN,
    },
  );
  await up.ready;
  const { model, writes } = dirtyWrites();
  const writer = await holdWriter(join(env.w.mnt, 'file'), writes, env.w.root);
  await writer.written;
  await crash(up.child, up.exited, writer);
  const report = await inspect(cf);
  assert.equal(report.format, 'dcache');
  assert.deepEqual([report.dirty, report.dirtyRanges], [3, ['1-3']], 'upstream left three dirty entries');
  assert.notEqual(report.mountToken, '00000000');

  const m = await startMount(
    [...s3Flags(env.server), '--prefix=a/', ...geometry, `--blockCacheFile=${cf}`, '--blockCacheRecoverDirtyBlocks', 'disk', env.w.mnt],
    env.w.mnt,
  );
  assert.match(m.stderr(), /taking over/);
  assert.match(m.stderr(), /3 dirty blocks to upload/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  assert.ok((await readBack('a/', 4 * BS)).equals(model), 'the recovered blocks read back byte for byte');
});

test('dirty blocks of a SIGKILLed ours are recovered by upstream', { skip: NEWEST_UPSTREAM_SKIP, timeout: 180000 }, async () => {
  const cf = join(env.w.root, 'from-ours.cache');
  const m = await startMount(
    [...s3Flags(env.server), '--prefix=b/', ...geometry, `--blockCacheFile=${cf}`, '--blockCacheWriteDelay=600000', 'disk', env.w.mnt],
    env.w.mnt,
  );
  const { model, writes } = dirtyWrites();
  const writer = await holdWriter(join(env.w.mnt, 'file'), writes, env.w.root);
  await writer.written;
  await crash(m.child, m.exited, writer);
  assert.deepEqual((await inspect(cf)).dirtyRanges, ['1-3']);

  const up = startUpstream(
    env.server,
    'disk',
    env.w.mnt,
    ['--prefix=b/', ...geometry, `--blockCacheFile=${cf}`, '--blockCacheRecoverDirtyBlocks'],
    {
      bin: NEWEST_UPSTREAM_BIN,
    },
  );
  await up.ready;
  assert.match(up.output(), /3 dirty blocks in cache file .* will be recovered/);
  assert.equal((await stopUpstream(up)).code, 0, up.output());
  assert.ok((await readBack('b/', 4 * BS)).equals(model), 'the recovered blocks read back byte for byte');
  assert.equal((await inspect(cf)).mountToken, '00000000', "upstream's clean unmount clears the file's token");
});

test(
  'clean slots written by one program are verified and reused by the other',
  { skip: NEWEST_UPSTREAM_SKIP, timeout: 180000 },
  async () => {
    const data = randomBytes(4 * BS);
    const flags = ['--prefix=c/', ...geometry, '--readAhead=0'];
    // Ours writes four blocks and unmounts cleanly: their slots are clean, with S3's ETags.
    const cf = join(env.w.root, 'clean.cache');
    let m = await startMount([...s3Flags(env.server), ...flags, `--blockCacheFile=${cf}`, 'disk', env.w.mnt], env.w.mnt);
    await writeInto(data, 'clean.bin');
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.equal((await inspect(cf)).clean, 4);

    // Upstream reads them through the same file: verified by ETag (304), none downloaded again.
    let up = startUpstream(env.server, 'disk', env.w.mnt, [...flags, `--blockCacheFile=${cf}`], { bin: NEWEST_UPSTREAM_BIN });
    await up.ready;
    await run('dd', [
      `if=${join(env.w.mnt, 'file')}`,
      `of=${join(env.w.root, 'up-read.bin')}`,
      'bs=64k',
      'count=4',
      'iflag=direct',
      'status=none',
    ]);
    assert.ok((await readFile(join(env.w.root, 'up-read.bin'))).equals(data));
    let stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    assert.equal(statOf(stats, 'block_cache_verified'), 4, stats);
    assert.equal(statOf(stats, 'block_cache_mismatch'), 0, stats);
    assert.equal((await stopUpstream(up)).code, 0, up.output());

    // The other way: upstream writes through a fresh file, then ours reuses its slots.
    const ucf = join(env.w.root, 'clean-up.cache');
    const other = randomBytes(4 * BS);
    up = startUpstream(env.server, 'disk', env.w.mnt, [...flags, `--blockCacheFile=${ucf}`], { bin: NEWEST_UPSTREAM_BIN });
    await up.ready;
    await writeInto(other, 'other.bin');
    assert.equal((await stopUpstream(up)).code, 0, up.output());
    assert.equal((await inspect(ucf)).clean, 4);
    m = await startMount([...s3Flags(env.server), ...flags, `--blockCacheFile=${ucf}`, 'disk', env.w.mnt], env.w.mnt);
    assert.match(m.stderr(), /4 clean blocks reused \(4 verified, 0 refreshed\)/);
    assert.doesNotMatch(m.stderr(), /did not match their checksum/);
    stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    assert.equal(statOf(stats, 'http_verified'), 4, 'four 304s: no block downloaded again');
    await run('dd', [
      `if=${join(env.w.mnt, 'file')}`,
      `of=${join(env.w.root, 'ours-read.bin')}`,
      'bs=64k',
      'count=4',
      'iflag=direct',
      'status=none',
    ]);
    assert.ok((await readFile(join(env.w.root, 'ours-read.bin'))).equals(other));
    stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    assert.equal(statOf(stats, 'block_cache_read_misses'), 0, 'every read served from the reused slots');
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  },
);

test(
  "Debian's 1.5.4 cache file opens in ours, its clean slots verified",
  { skip: existsSync(UPSTREAM_BIN) ? false : `${UPSTREAM_BIN} is not installed`, timeout: 180000 },
  async () => {
    const cf = join(env.w.root, 'debian.cache');
    const flags = ['--prefix=d/', ...geometry, '--readAhead=0'];
    const data = randomBytes(2 * BS);
    const up = startUpstream(env.server, 'disk', env.w.mnt, [...flags, `--blockCacheFile=${cf}`]);
    await up.ready;
    await writeInto(data, 'debian.bin');
    assert.equal((await stopUpstream(up)).code, 0, up.output());
    const report = await inspect(cf);
    assert.equal(report.format, 'dcache', '1.5.4 writes the current format');
    assert.equal(report.clean, 2);

    const m = await startMount([...s3Flags(env.server), ...flags, `--blockCacheFile=${cf}`, 'disk', env.w.mnt], env.w.mnt);
    assert.match(m.stderr(), /2 clean blocks reused \(2 verified, 0 refreshed\)/);
    await run('dd', [
      `if=${join(env.w.mnt, 'file')}`,
      `of=${join(env.w.root, 'debian-read.bin')}`,
      'bs=64k',
      'count=2',
      'iflag=direct',
      'status=none',
    ]);
    assert.ok((await readFile(join(env.w.root, 'debian-read.bin'))).equals(data));
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  },
);
