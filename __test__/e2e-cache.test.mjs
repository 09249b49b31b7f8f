// The block cache through a real mount: write-back parallelism seen at a recording endpoint,
// fsync and unmount waiting for the uploads, and cached reads costing no requests.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server, getObject } from './helpers/s3server.mjs';
import { useRecordedS3 } from './helpers/recordingProxy.mjs';
import { startMount, workdir, run } from './helpers/ours.mjs';

const env = useRecordedS3('cache', { before, after, workdir, startS3Server });

const flags = () => [`--baseURL=${env.proxy.endpoint}/`, '--accessId=S3RVER', '--accessKey=S3RVER'];
const blockPuts = (prefix) =>
  env.proxy.requests.filter((r) => r.method === 'PUT' && r.key.startsWith(prefix) && !r.key.endsWith('mounted'));

test('write-back: uploads run --blockCacheThreads at a time and fsync waits for them all', { timeout: 120000 }, async () => {
  const m = await startMount(
    [...flags(), '--prefix=wb/', '--blockSize=64k', '--size=8m', '--blockCacheThreads=3', 'disk', env.w.mnt],
    env.w.mnt,
  );
  try {
    env.proxy.clear();
    const data = randomBytes(2 << 20);
    const src = join(env.w.root, 'src.bin');
    await writeFile(src, data);
    await run('dd', [`if=${src}`, `of=${join(env.w.mnt, 'file')}`, 'bs=128k', 'conv=notrunc,fsync', 'status=none']);
    const puts = blockPuts('wb/');
    assert.equal(new Set(puts.map((p) => p.key)).size, 32, 'every block uploaded by the time fsync returned');
    assert.equal(env.proxy.puts.max, 3, `at most and at least 3 PUTs at once (saw ${env.proxy.puts.max})`);
    for (const i of [0, 17, 31]) {
      const obj = await getObject(env.server, 'disk', `wb/${i.toString(16).padStart(8, '0')}`);
      assert.ok(obj.body.equals(data.subarray(i * 65536, (i + 1) * 65536)), `block ${i} in S3`);
    }
    // Reading back what was just written is served by the cache.
    env.proxy.clear();
    const back = await readFile(join(env.w.mnt, 'file'));
    assert.ok(back.subarray(0, data.length).equals(data));
    assert.equal(
      env.proxy.requests.filter((r) => r.method === 'GET' && r.key.startsWith('wb/') && parseInt(r.key.slice(3), 16) < 32).length,
      0,
    );
    const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    assert.match(stats, /^block_cache_read_hits\s+[1-9]\d*$/m);
    assert.match(stats, /^block_cache_dirty_ratio\s+0\.00000000$/m);
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});

test('closing the file uploads everything still dirty, however long the write delay', { timeout: 120000 }, async () => {
  const m = await startMount(
    [...flags(), '--prefix=um/', '--blockSize=64k', '--size=4m', '--blockCacheWriteDelay=60000', 'disk', env.w.mnt],
    env.w.mnt,
  );
  try {
    const data = randomBytes(1 << 20);
    const src = join(env.w.root, 'um.bin');
    await writeFile(src, data);
    // No fsync, a minute of write delay: close(2) alone (FUSE flush) must put the data in S3.
    await run('dd', [`if=${src}`, `of=${join(env.w.mnt, 'file')}`, 'bs=128k', 'conv=notrunc', 'status=none']);
    for (let i = 0; i < 16; i++) {
      const obj = await getObject(env.server, 'disk', `um/${i.toString(16).padStart(8, '0')}`);
      assert.ok(obj?.body.equals(data.subarray(i * 65536, (i + 1) * 65536)), `block ${i} in S3 once dd closed the file`);
    }
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});
