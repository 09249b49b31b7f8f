// TRIM end to end (fstrim, -o discard, mkfs): ext4 on a loop device over the FUSE file; what they
// send arrives as fallocate and deletes the objects of freed blocks, and nothing else changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startMount, workdir, run, loopMount, sha256File, parseStatsFile, checkAfterRemount } from './helpers/ours.mjs';

const BS = 64 * 1024;
const blockObjects = async (store) => (await readdir(store)).filter((k) => /^[0-9a-f]{8}$/.test(k)).length;

test('fstrim on ext4 deletes the objects of deleted files; what remains reads back and e2fsck is clean', { timeout: 180000 }, async () => {
  const w = await workdir('trim-fstrim');
  const flags = ['--test', '--size=256m', `--blockSize=${BS}`, w.store, w.mnt];
  // --listBlocks: the zero cache knows the fresh disk is empty, so discarding it costs nothing.
  const m = await startMount(['--listBlocks', ...flags], w.mnt);
  const file = join(w.mnt, 'file');
  let keepSum;
  try {
    // mkfs.ext4 discards the whole device first (its default): that must work, and leave the
    // disk holding only ext4's own metadata.
    await run('mkfs.ext4', ['-q', '-F', file]);
    const afterMkfs = await blockObjects(w.store);
    const stats = parseStatsFile(await readFile(join(w.mnt, 'stats'), 'utf8'));
    assert.ok(Number(stats.discarded_blocks) >= 4000, `mkfs discarded the disk: ${stats.discarded_blocks} blocks`);
    assert.deepEqual(
      [stats.http_deletes, stats.http_multi_deletes, stats.http_zero_blocks_written],
      ['0', '0', '0'],
      'and no request did it',
    );
    assert.ok(afterMkfs < (256 / 64) * 4 + 64, `mkfs left ${afterMkfs} objects`);
    await loopMount(file, w.data);
    await run('dd', ['if=/dev/urandom', `of=${join(w.data, 'big')}`, 'bs=1M', 'count=32', 'conv=fsync', 'status=none']);
    await run('dd', ['if=/dev/urandom', `of=${join(w.data, 'keep')}`, 'bs=1M', 'count=4', 'conv=fsync', 'status=none']);
    keepSum = await sha256File(join(w.data, 'keep'));
    await run('sync');
    const written = await blockObjects(w.store);
    assert.ok(written >= afterMkfs + (36 << 20) / BS, `${written} objects after writing 36 MiB`);
    await run('rm', [join(w.data, 'big')]);
    await run('sync');
    assert.equal(await blockObjects(w.store), written, 'deleting a file alone deletes no object');
    // Write-through: the objects are gone when fstrim returns.
    await run('fstrim', [w.data]);
    const trimmed = await blockObjects(w.store);
    // The big file's 512 blocks are gone (ext4 may keep a few for its own bookkeeping).
    assert.ok(written - trimmed >= (32 << 20) / BS - 8, `fstrim deleted ${written - trimmed} objects`);
    assert.equal(await sha256File(join(w.data, 'keep')), keepSum);
  } finally {
    await run('umount', [w.data]).catch(() => {});
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  await checkAfterRemount(w, flags, 'keep', keepSum);
});

test('-o discard: deleting a file deletes its objects at once', { timeout: 180000 }, async () => {
  const w = await workdir('trim-discard');
  const m = await startMount(['--test', '--size=64m', `--blockSize=${BS}`, w.store, w.mnt], w.mnt);
  try {
    const file = join(w.mnt, 'file');
    await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', file]);
    await run('mount', ['-o', 'loop,discard', file, w.data]);
    await run('dd', ['if=/dev/urandom', `of=${join(w.data, 'big')}`, 'bs=1M', 'count=8', 'conv=fsync', 'status=none']);
    await run('sync');
    const written = await blockObjects(w.store);
    await run('rm', [join(w.data, 'big')]);
    await run('sync');
    // ext4 discards freed extents when the transaction commits: poll a little.
    let now = written;
    for (let i = 0; i < 100 && written - now < (8 << 20) / BS - 8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = await blockObjects(w.store);
    }
    assert.ok(written - now >= (8 << 20) / BS - 8, `discard deleted ${written - now} objects`);
  } finally {
    await run('umount', [w.data]).catch(() => {});
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    await w.cleanup();
  }
});
