// End to end on a real S3 implementation (s3rver on loopback): ext4 on the backed file, files
// written and verified, clean unmount, remount in a new process with auto-detected geometry.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server, listKeys, getObject, headObject } from './helpers/s3server.mjs';
import { startMount, runCli, workdir, makeExt4, loopMount, run, isMounted, s3Flags, parseStatsFile } from './helpers/ours.mjs';
import { statsNow, waitForListing } from './helpers/listing.mjs';

let server;
before(async () => {
  server = await startS3Server({ buckets: ['disk', 'other'] });
});
after(async () => {
  await server?.stop();
});

test('ext4 on S3: write, unmount, remount with auto-detection, verify, e2fsck clean', { timeout: 600000 }, async () => {
  const w = await workdir('s3');
  try {
    const file = join(w.mnt, 'file');
    const args = [...s3Flags(server), '--prefix=vol/', '--blockSize=64k', '--size=32m', 'disk', w.mnt];
    let m = await startMount(args, w.mnt);
    assert.equal((await stat(file)).size, 32 * 2 ** 20);

    const flag = await getObject(server, 'disk', 'vol/s3backer-mounted');
    assert.ok(flag, 'mounted flag set while mounted');
    assert.match(flag.metadata['s3backer-mount-token'], /^[0-9a-f]{8}$/);
    assert.match(flag.body.toString(), /^.+\n\d{8}T\d{6}Z\n$/);

    // A second mount of the same bucket is refused while the first is up.
    const w2 = await workdir('s3-second');
    try {
      const second = await runCli(['-f', ...s3Flags(server), '--prefix=vol/', 'disk', w2.mnt]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /appears to be mounted already/);
      assert.equal(await isMounted(w2.mnt), false);
    } finally {
      await w2.cleanup();
    }

    await makeExt4(file);
    await loopMount(file, w.data);
    const payload = randomBytes(2 * 2 ** 20 + 77);
    await writeFile(join(w.data, 'random.bin'), payload);
    await writeFile(join(w.data, 'notes.txt'), 'a disk that lives in S3\n');
    await run('umount', [w.data]);
    const stats = parseStatsFile(await readFile(join(w.mnt, 'stats'), 'utf8'));
    assert.ok(Number(stats.http_puts) > 0);
    assert.ok(Number(stats.http_normal_blocks_written) > 0);
    assert.match(stats.http_avg_put_time, /^\d+\.\d{3} sec$/);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });

    assert.equal(await headObject(server, 'disk', 'vol/s3backer-mounted'), null, 'flag cleared');
    const keys = await listKeys(server, 'disk', 'vol/');
    assert.ok(keys.length > 5 && keys.length < 512, `${keys.length} of 512 blocks stored`);
    for (const key of keys) assert.match(key, /^vol\/[0-9a-f]{8}$/);
    const block0 = await getObject(server, 'disk', 'vol/00000000');
    assert.equal(block0.metadata['s3backer-blocksize'], '65536');
    assert.equal(block0.metadata['s3backer-filesize'], String(32 * 2 ** 20));
    assert.equal(block0.contentType, 'application/x-s3backer-block');
    for (const key of keys.slice(0, 40)) {
      const obj = await getObject(server, 'disk', key);
      assert.equal(obj.body.length, 65536);
      assert.ok(
        obj.body.some((b) => b !== 0),
        `${key} is not an all-zero block`,
      );
    }

    // New process, no geometry flags: block 0 tells the sizes. Read-ahead on (the default), and
    // it must skip the blocks the listing showed absent.
    m = await startMount([...s3Flags(server), '--prefix=vol/', '--listBlocks', 'disk', w.mnt], w.mnt);
    // The listing runs in the background: once it is done, no block it showed absent is fetched.
    await waitForListing(w.mnt);
    assert.equal((await stat(file)).size, 32 * 2 ** 20);
    await run('e2fsck', ['-fn', file]);
    await loopMount(file, w.data, { readOnly: true });
    assert.ok((await readFile(join(w.data, 'random.bin'))).equals(payload));
    assert.equal(await readFile(join(w.data, 'notes.txt'), 'utf8'), 'a disk that lives in S3\n');
    await run('umount', [w.data]);
    // Rendered anew (the wait above left a snapshot of the stats file in the kernel's cache).
    const after = await statsNow(w.mnt);
    assert.ok(Number.parseFloat(after.zero_block_cache_size) >= 512 - keys.length, 'listing marked absent blocks zero');
    assert.equal(after.http_zero_blocks_read, '0', 'no GET ever asked for a block known to be zero');
    assert.ok(Number(after.zero_block_cache_read_hits) > 0, 'zero blocks were read, from the zero cache');
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  } finally {
    await w.cleanup();
  }
});

test('writes into one block from several processes at once are all kept', { timeout: 120000 }, async () => {
  const w = await workdir('s3-rmw');
  try {
    const m = await startMount([...s3Flags(server), '--prefix=rmw/', '--blockSize=64k', '--size=1m', 'disk', w.mnt], w.mnt);
    const file = join(w.mnt, 'file');
    // 16 writers, each 4 KiB at its own offset, all inside block 0, without the page cache merging them.
    const pieces = Array.from({ length: 16 }, () => randomBytes(4096));
    await Promise.all(
      pieces.map((p, i) => {
        const src = join(w.root, `piece${i}`);
        return writeFile(src, p).then(() =>
          run('dd', [`if=${src}`, `of=${file}`, 'bs=4096', `seek=${i}`, 'count=1', 'conv=notrunc', 'oflag=direct', 'status=none']),
        );
      }),
    );
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    const block0 = await getObject(server, 'disk', 'rmw/00000000');
    assert.ok(block0.body.subarray(0, 65536).equals(Buffer.concat(pieces)));
  } finally {
    await w.cleanup();
  }
});

test('fsync returns only once the data is in S3', { timeout: 120000 }, async () => {
  const w = await workdir('s3-fsync');
  try {
    const m = await startMount([...s3Flags(server), '--prefix=sync/', '--size=1m', 'disk', w.mnt], w.mnt);
    const src = join(w.root, 'payload');
    const data = randomBytes(8192);
    await writeFile(src, data);
    await run('dd', [`if=${src}`, `of=${join(w.mnt, 'file')}`, 'bs=8192', 'seek=3', 'conv=notrunc,fsync', 'status=none']);
    // Still mounted: the data must already be there.
    assert.ok((await getObject(server, 'disk', 'sync/00000006')).body.equals(data.subarray(0, 4096)));
    assert.ok((await getObject(server, 'disk', 'sync/00000007')).body.equals(data.subarray(4096)));
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  } finally {
    await w.cleanup();
  }
});

test('--readOnly: writes fail with EROFS and no flag is set', { timeout: 120000 }, async () => {
  const w = await workdir('s3-ro');
  try {
    const m = await startMount([...s3Flags(server), '--prefix=ro/', '--size=1m', '--readOnly', 'disk', w.mnt], w.mnt);
    assert.equal(await headObject(server, 'disk', 'ro/s3backer-mounted'), null);
    assert.equal((await stat(join(w.mnt, 'file'))).mode & 0o777, 0o400);
    const dd = await run('dd', ['if=/dev/zero', `of=${join(w.mnt, 'file')}`, 'bs=4096', 'count=1', 'conv=notrunc'], {}).catch((e) => e);
    assert.match(dd.stderr, /Read-only file system/);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  } finally {
    await w.cleanup();
  }
});
