// The persistent cache file: crash recovery after SIGKILL, verification of reloaded blocks,
// refusal of foreign files, resizing, and the inspection tool.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile, readFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server, getObject, putObject } from './helpers/s3server.mjs';
import { startMount, runCli, workdir, run, s3Flags, isMounted, parseStatsFile } from './helpers/ours.mjs';
import { holdWriter as holdWriterIn } from './helpers/holdWriter.mjs';

const env = useS3Server('cachefile', { before, after, workdir });

const BS = 65536;
const key = (prefix, n) => `${prefix}${n.toString(16).padStart(8, '0')}`;

const holdWriter = (file, writes) => holdWriterIn(file, writes, env.w.root);

async function crash(m, writer) {
  m.child.kill('SIGKILL');
  await m.exited;
  writer.child.kill('SIGKILL');
  await run('umount', ['-l', env.w.mnt]).catch(() => {});
  assert.equal(await isMounted(env.w.mnt), false);
}

test('SIGKILL loses nothing that reached the cache file: the next mount uploads it', { timeout: 180000 }, async () => {
  const cf = join(env.w.root, 'crash.cache');
  const flags = [
    ...s3Flags(env.server),
    '--prefix=k/',
    '--blockSize=64k',
    '--size=4m',
    `--blockCacheFile=${cf}`,
    '--blockCacheWriteDelay=600000',
  ];
  let m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const blocks = [randomBytes(BS), randomBytes(BS), randomBytes(BS)];
  // Out of order: a writer moving on to the next block would have the finished one uploaded at once.
  const order = [1, 0, 2];
  const writer = await holdWriter(
    join(env.w.mnt, 'file'),
    order.map((i) => [(i + 1) * BS, blocks[i]]),
  );
  await writer.written;
  await crash(m, writer);
  assert.equal(await getObject(env.server, 'disk', key('k/', 1)), null, 'never uploaded before the crash');

  const inspect = await runCli(['cache', 'inspect', '--json', cf]);
  assert.equal(inspect.code, 0, inspect.stderr);
  const report = JSON.parse(inspect.stdout);
  assert.equal(report.dirty, 3);
  assert.deepEqual(report.dirtyRanges, ['1-3']);
  assert.equal(report.entries, undefined);

  m = await startMount([...flags, '--blockCacheRecoverDirtyBlocks', 'disk', env.w.mnt], env.w.mnt);
  assert.match(m.stderr(), /taking over/);
  assert.match(m.stderr(), /3 dirty blocks to upload/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  for (const [i, b] of blocks.entries()) {
    assert.ok((await getObject(env.server, 'disk', key('k/', i + 1)))?.body.equals(b), `block ${i + 1} recovered into S3`);
  }

  // Without the recovery flag the crashed mount's flag refuses the mount, as upstream's; with
  // --force, dirty blocks are discarded with a warning that counts them.
  m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const lost = await holdWriter(join(env.w.mnt, 'file'), [
    [0, randomBytes(BS)],
    [BS * 5, randomBytes(BS)],
  ]);
  await lost.written;
  await crash(m, lost);
  const refused = await runCli(['-f', ...flags, 'disk', env.w.mnt]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /appears to be mounted already/);
  m = await startMount([...flags, '--force', 'disk', env.w.mnt], env.w.mnt);
  assert.match(m.stderr(), /discarded 2 dirty blocks .*--blockCacheRecoverDirtyBlocks would upload them/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
});

test('reloaded clean blocks are verified against S3; --blockCacheNoVerify trusts the file', { timeout: 180000 }, async () => {
  const cf = join(env.w.root, 'verify.cache');
  const flags = [...s3Flags(env.server), '--prefix=v/', '--blockSize=64k', '--size=1m', `--blockCacheFile=${cf}`, '--readAhead=0'];
  const original = randomBytes(BS);
  await putObject(env.server, 'disk', key('v/', 0), original, {
    metadata: { 's3backer-blocksize': '65536', 's3backer-filesize': '1048576' },
  });
  await putObject(env.server, 'disk', key('v/', 1), original);
  let m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  await run('dd', [`if=${join(env.w.mnt, 'file')}`, 'of=/dev/null', 'bs=64k', 'count=2', 'iflag=direct', 'status=none']);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  assert.equal(JSON.parse((await runCli(['cache', 'inspect', '--json', cf])).stdout).clean, 2);

  // Change block 1 behind the cache's back.
  const changed = randomBytes(BS);
  await putObject(env.server, 'disk', key('v/', 1), changed);
  m = await startMount([...flags, '--blockCacheNoVerify', 'disk', env.w.mnt], env.w.mnt);
  let read = await readFile(join(env.w.mnt, 'file'));
  assert.ok(read.subarray(BS, 2 * BS).equals(original), 'unverified: the cached (stale) copy');
  assert.deepEqual(await m.stop(), { code: 0, signal: null });

  m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  read = await readFile(join(env.w.mnt, 'file'));
  assert.ok(read.subarray(0, BS).equals(original));
  assert.ok(read.subarray(BS, 2 * BS).equals(changed), 'verified: the new data');
  const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
  // All 16 blocks were cached by the full read above: 15 still match (14 of them absent, zero).
  assert.match(stats, /^block_cache_initial_size\s+16 blocks$/m);
  assert.match(stats, /^block_cache_verified\s+15$/m);
  assert.match(stats, /^block_cache_mismatch\s+1$/m);
  assert.match(stats, /^http_verified\s+1$/m, 'block 0 answered 304 Not Modified');
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
});

/** `length` bytes of a file at `position`. */
async function readAt(file, position, length) {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function writeAt(file, position, data) {
  const fh = await open(file, 'r+');
  try {
    await fh.write(data, 0, data.length, position);
  } finally {
    await fh.close();
  }
}

test('damaged data in clean slots is caught by its checksum and fetched again, never served', { timeout: 180000 }, async () => {
  const cf = join(env.w.root, 'damaged.cache');
  const flags = [...s3Flags(env.server), '--prefix=d/', '--blockSize=64k', '--size=1m', `--blockCacheFile=${cf}`, '--readAhead=0'];
  const file = join(env.w.mnt, 'file');
  const blocks = [randomBytes(BS), randomBytes(BS), randomBytes(BS), randomBytes(BS)];
  const md5 = (b) => createHash('md5').update(b).digest('hex');
  // O_DIRECT, so kernel read-ahead does not bring further blocks into the cache.
  const readFour = async () => {
    const out = join(env.w.root, 'damaged-read.bin');
    await run('dd', [`if=${file}`, `of=${out}`, 'bs=64k', 'count=4', 'iflag=direct', 'status=none']);
    return readFile(out);
  };
  const mountStats = async () => parseStatsFile(await readFile(join(env.w.mnt, 'stats'), 'utf8'));

  let m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  await writeAt(file, 0, Buffer.concat(blocks));
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  for (const [i, b] of blocks.entries()) {
    assert.ok((await getObject(env.server, 'disk', key('d/', i)))?.body.equals(b), `block ${i} in S3`);
  }

  // Where each block lives in the file, as `cache inspect` reports it.
  const inspect = async () => {
    const res = await runCli(['cache', 'inspect', '--json', '--blocks', cf]);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout);
  };
  const report = await inspect();
  assert.equal(report.clean, 4);
  const slotOf = new Map(report.entries.map((e) => [e.block, e]));
  for (const [i, b] of blocks.entries()) {
    const e = slotOf.get(i);
    assert.equal(e.dirty, false);
    assert.equal(e.etag, md5(b), `block ${i}: its entry holds the MD5 of its data`);
    assert.equal(e.dataOffset, report.dataOffset + e.slot * BS);
    assert.ok((await readAt(cf, e.dataOffset, BS)).equals(b), `block ${i}: its data is at the reported offset`);
  }

  // Bit rot in the middle of block 1's slot, and block 2's slot zeroed; the table stays intact.
  const rotAt = slotOf.get(1).dataOffset + BS / 2;
  const rotten = await readAt(cf, rotAt, 16);
  await writeAt(cf, rotAt, Buffer.from(rotten.map((x) => x ^ 0x5a)));
  await writeAt(cf, slotOf.get(2).dataOffset, Buffer.alloc(BS));
  assert.deepEqual((await inspect()).entries, report.entries, 'the slot table is untouched');
  assert.ok(!(await readAt(cf, slotOf.get(1).dataOffset, BS)).equals(blocks[1]));

  m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const back = await readFour();
  for (const [i, b] of blocks.entries()) {
    assert.ok(back.subarray(i * BS, (i + 1) * BS).equals(b), `block ${i}: the original data, not the damaged slot`);
  }
  let stats = await mountStats();
  assert.equal(stats.block_cache_initial_size, '4 blocks');
  assert.equal(stats.block_cache_mismatch, '2', 'the two damaged slots were fetched again');
  assert.equal(stats.block_cache_verified, '2');
  // A conditional GET for a damaged slot would have been answered 304 as well: only the two
  // intact slots were asked that way.
  assert.equal(stats.http_verified, '2');
  const warning = /warn: cache file: 2 clean blocks did not match their checksum \(damaged file\?\); fetched again from S3 \(blocks 1, 2\)/;
  assert.match(m.stderr(), warning);
  assert.equal(m.stderr().split('did not match their checksum').length - 1, 1, 'one warning for all of them');
  assert.match(m.stderr(), /4 clean blocks reused \(2 verified, 2 refreshed\)/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });

  // The slots were rewritten: the file is healthy again and the next mount trusts it cheaply.
  const healed = await inspect();
  for (const [i, b] of blocks.entries()) {
    const e = healed.entries.find((x) => x.block === i);
    assert.equal(e.etag, md5(b));
    assert.ok((await readAt(cf, e.dataOffset, BS)).equals(b), `block ${i}: its slot holds the right data again`);
  }
  m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const again = await readFour();
  assert.ok(again.equals(Buffer.concat(blocks)));
  stats = await mountStats();
  assert.equal(stats.block_cache_initial_size, '4 blocks');
  assert.equal(stats.block_cache_mismatch, '0');
  assert.equal(stats.block_cache_verified, '4');
  assert.equal(stats.http_verified, '4');
  assert.doesNotMatch(m.stderr(), /checksum/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
});

test('foreign, damaged or mismatched cache files are refused; a new size resizes', { timeout: 120000 }, async () => {
  const foreign = join(env.w.root, 'foreign.cache');
  await writeFile(foreign, randomBytes(20000));
  const base = [...s3Flags(env.server), '--prefix=f/', '--blockSize=64k', '--size=1m'];
  let res = await runCli(['-f', ...base, `--blockCacheFile=${foreign}`, 'disk', env.w.mnt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /not an s3backer cache file.*refusing to use it/);
  assert.equal(await isMounted(env.w.mnt), false);
  res = await runCli(['cache', 'inspect', foreign]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /not an s3backer cache file/);

  const cf = join(env.w.root, 'sized.cache');
  let m = await startMount([...base, `--blockCacheFile=${cf}`, '--blockCacheSize=8', 'disk', env.w.mnt], env.w.mnt);
  await run('dd', ['if=/dev/urandom', `of=${join(env.w.mnt, 'file')}`, 'bs=64k', 'count=6', 'conv=notrunc', 'status=none']);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  m = await startMount([...base, `--blockCacheFile=${cf}`, '--blockCacheSize=4', 'disk', env.w.mnt], env.w.mnt);
  assert.match(m.stderr(), /resized from 8 to 4 slots, keeping 4 of 6 blocks/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  const text = await runCli(['cache', 'inspect', '--blocks', cf]);
  assert.match(text.stdout, /^slots\s+4 \(256k of data\)$/m);
  assert.match(text.stdout, /^used\s+4 \(4 clean, 0 dirty\), 0 free$/m);
  assert.match(text.stdout, /^slot\s+block\s+state\s+etag$/m);
  assert.equal(text.stdout.split('\n').filter((l) => / clean {2}[0-9a-f]{32}$/.test(l)).length, 4);

  // The same file for a disk of another block size is refused, not reused.
  res = await runCli([
    '-f',
    ...s3Flags(env.server),
    '--prefix=g/',
    '--blockSize=4k',
    '--size=1m',
    `--blockCacheFile=${cf}`,
    'disk',
    env.w.mnt,
  ]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /holds blocks of 65536 bytes, but this disk's blocks are 4096 bytes/);
});

test(
  'a full disk under the cache file: a clear error before mounting, and a file already in place keeps working',
  { timeout: 120000 },
  async () => {
    // A 1 MiB tmpfs cannot hold a 16-slot cache of 64 KiB blocks (1 MiB of data plus the table).
    const small = join(env.w.root, 'small-fs');
    await run('mkdir', ['-p', small]);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      const base = [...s3Flags(env.server), '--prefix=full/', '--blockSize=64k', '--size=1m'];
      let res = await runCli(['-f', ...base, `--blockCacheFile=${join(small, 'big.cache')}`, '--blockCacheSize=16', 'disk', env.w.mnt]);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /cannot create cache file .*big\.cache.*No space left on device/);
      assert.equal(await isMounted(env.w.mnt), false);
      assert.equal(await getObject(env.server, 'disk', 'full/s3backer-mounted'), null, 'no flag left behind');
      assert.deepEqual((await run('ls', ['-A', small])).stdout.trim(), '', 'the failed file is removed');

      // A file that fits, then the disk fills up: its slots were reserved, so writing into them
      // neither crashes (SIGBUS) nor corrupts what they held.
      const cf = join(small, 'ok.cache');
      let m = await startMount(
        [...base, `--blockCacheFile=${cf}`, '--blockCacheSize=8', '--blockCacheWriteDelay=600000', 'disk', env.w.mnt],
        env.w.mnt,
      );
      await run('dd', ['if=/dev/zero', `of=${join(small, 'filler')}`, 'bs=64k', 'status=none']).catch(() => {}); // fills the tmpfs
      const data = randomBytes(4 * BS);
      await writeFile(join(env.w.root, 'four.bin'), data);
      await run('dd', [
        `if=${join(env.w.root, 'four.bin')}`,
        `of=${join(env.w.mnt, 'file')}`,
        'bs=64k',
        'conv=notrunc,fsync',
        'status=none',
      ]);
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
      m = await startMount([...base, `--blockCacheFile=${cf}`, '--blockCacheSize=8', 'disk', env.w.mnt], env.w.mnt);
      // The slots written on the full disk reload intact: each hashes to the MD5 its entry records.
      assert.match(m.stderr(), /4 clean blocks reused \(4 verified, 0 refreshed\), 0 dirty/);
      assert.doesNotMatch(m.stderr(), /did not match their checksum|had no checksum/);
      const back = await readFile(join(env.w.mnt, 'file'));
      assert.ok(back.subarray(0, 4 * BS).equals(data), 'read back through the reloaded cache file');
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    } finally {
      await run('umount', [small]).catch(() => {});
    }
  },
);
