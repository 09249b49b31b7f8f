// The persistent cache file: crash recovery after SIGKILL, verification of reloaded blocks,
// refusal of foreign files, resizing, and the inspection tool.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server, getObject, putObject } from './helpers/s3server.mjs';
import { startMount, runCli, workdir, run, s3Flags, isMounted } from './helpers/ours.mjs';

const env = useS3Server('cachefile', { before, after, workdir });

const BS = 65536;
const key = (prefix, n) => `${prefix}${n.toString(16).padStart(8, '0')}`;

/** A process that writes blocks through its own descriptor and keeps it open (no close, no flush). */
async function holdWriter(file, writes) {
  const sources = [];
  for (const [i, [pos, buf]] of writes.entries()) {
    const src = join(env.w.root, `hold-${i}.bin`);
    await writeFile(src, buf);
    sources.push([pos, src]);
  }
  const script = `
    const fs = require('fs');
    const fd = fs.openSync(${JSON.stringify(file)}, 'r+');
    for (const [pos, src] of ${JSON.stringify(sources)}) {
      const data = fs.readFileSync(src);
      fs.writeSync(fd, data, 0, data.length, pos);
    }
    process.stdout.write('written\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const written = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => d.toString().includes('written') && resolve());
    child.on('exit', (code) => reject(new Error(`writer exited with ${code}`)));
  });
  return { child, written };
}

async function crash(m, writer) {
  m.child.kill('SIGKILL');
  await m.exited;
  writer.child.kill('SIGKILL');
  await run('fusermount', ['-uz', env.w.mnt]).catch(() => {});
  assert.equal(await isMounted(env.w.mnt), false);
}

test('SIGKILL loses nothing that reached the cache file: the next mount uploads it', { timeout: 180000 }, async () => {
  const cf = join(env.w.root, 'crash.cache');
  const flags = [...s3Flags(env.server), '--prefix=k/', '--blockSize=64k', '--size=4m', `--blockCacheFile=${cf}`, '--blockCacheWriteDelay=600000'];
  let m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const blocks = [randomBytes(BS), randomBytes(BS), randomBytes(BS)];
  // Out of order: a writer moving on to the next block would have the finished one uploaded at once.
  const order = [1, 0, 2];
  const writer = await holdWriter(join(env.w.mnt, 'file'), order.map((i) => [(i + 1) * BS, blocks[i]]));
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

  // Without the recovery flag, dirty blocks are discarded with a warning that counts them.
  m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const lost = await holdWriter(join(env.w.mnt, 'file'), [[0, randomBytes(BS)], [BS * 5, randomBytes(BS)]]);
  await lost.written;
  await crash(m, lost);
  m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  assert.match(m.stderr(), /discarded 2 dirty blocks .*--blockCacheRecoverDirtyBlocks would upload them/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
});

test('reloaded clean blocks are verified against S3; --blockCacheNoVerify trusts the file', { timeout: 180000 }, async () => {
  const cf = join(env.w.root, 'verify.cache');
  const flags = [...s3Flags(env.server), '--prefix=v/', '--blockSize=64k', '--size=1m', `--blockCacheFile=${cf}`, '--readAhead=0'];
  const original = randomBytes(BS);
  await putObject(env.server, 'disk', key('v/', 0), original, { metadata: { 's3backer-blocksize': '65536', 's3backer-filesize': '1048576' } });
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
  assert.match(stats, /^block_cache_initial_size\s+16$/m);
  assert.match(stats, /^block_cache_verified\s+15$/m);
  assert.match(stats, /^block_cache_mismatch\s+1$/m);
  assert.match(stats, /^http_verified\s+1$/m, 'block 0 answered 304 Not Modified');
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
  assert.match(text.stdout, /^slot\s+block\s+state\s+md5$/m);
  assert.equal(text.stdout.split('\n').filter((l) => / clean {2}[0-9a-f]{32}$/.test(l)).length, 4);

  // The same file for a disk of another block size is refused, not reused.
  res = await runCli(['-f', ...s3Flags(env.server), '--prefix=g/', '--blockSize=4k', '--size=1m', `--blockCacheFile=${cf}`, 'disk', env.w.mnt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /holds blocks of 65536 bytes, but this disk's blocks are 4096 bytes/);
});

test('a full disk under the cache file: a clear error before mounting, and a file already in place keeps working', { timeout: 120000 }, async () => {
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
    let m = await startMount([...base, `--blockCacheFile=${cf}`, '--blockCacheSize=8', '--blockCacheWriteDelay=600000', 'disk', env.w.mnt], env.w.mnt);
    await run('dd', ['if=/dev/zero', `of=${join(small, 'filler')}`, 'bs=64k', 'status=none']).catch(() => {}); // fills the tmpfs
    const data = randomBytes(4 * BS);
    await writeFile(join(env.w.root, 'four.bin'), data);
    await run('dd', [`if=${join(env.w.root, 'four.bin')}`, `of=${join(env.w.mnt, 'file')}`, 'bs=64k', 'conv=notrunc,fsync', 'status=none']);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    m = await startMount([...base, `--blockCacheFile=${cf}`, '--blockCacheSize=8', 'disk', env.w.mnt], env.w.mnt);
    const back = await readFile(join(env.w.mnt, 'file'));
    assert.ok(back.subarray(0, 4 * BS).equals(data), 'read back through the reloaded cache file');
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  } finally {
    await run('umount', [small]).catch(() => {});
  }
});
