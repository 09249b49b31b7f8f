// Buckets are byte-compatible both ways with upstream's C code: Debian's s3backer 1.5.4, and
// upstream's newest build when one is given (S3BACKER_UPSTREAM_BIN, or what setup.sh built).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server } from './helpers/s3server.mjs';
import { UPSTREAM_BIN, UPSTREAM_BUILDS, NEWEST_UPSTREAM_SKIP, startUpstream, stopUpstream } from './helpers/upstream.mjs';
import { startMount, workdir, makeExt4, loopMount, run, s3Flags } from './helpers/ours.mjs';

const skip = existsSync(UPSTREAM_BIN) ? false : `${UPSTREAM_BIN} is not installed (apt-get install s3backer)`;
const SIZE = 8 * 2 ** 20;
let server;
before(async () => {
  server = await startS3Server({ buckets: ['interop'] });
});
after(async () => {
  await server?.stop();
});

/** Writes `data` at `offset` into the mounted file from a child process, then syncs it. */
async function writeAt(w, file, offset, data) {
  const src = join(w.root, `chunk-${offset}`);
  await writeFile(src, data);
  await run('dd', [`if=${src}`, `of=${file}`, 'bs=4096', `seek=${offset / 4096}`, 'conv=notrunc,fsync', 'status=none']);
}

/** Random data in some places, zeros written over data in another, untouched elsewhere. */
async function writePattern(w, file) {
  const model = Buffer.alloc(SIZE);
  for (const [offset, length] of [
    [0, 300 * 1024],
    [1 << 20, 2 << 20],
    [SIZE - 64 * 1024, 64 * 1024],
  ]) {
    const data = randomBytes(length);
    data.copy(model, offset);
    await writeAt(w, file, offset, data);
  }
  await writeAt(w, file, 1.5 * 2 ** 20, Buffer.alloc(128 * 1024));
  model.fill(0, 1.5 * 2 ** 20, 1.5 * 2 ** 20 + 128 * 1024);
  return model;
}

for (const upstream of UPSTREAM_BUILDS) {
  const tag = upstream.bin === UPSTREAM_BIN ? 'debian' : 'newest';
  test(`a bucket written by ${upstream.name} reads back identically through ours`, { skip, timeout: 300000 }, async () => {
    const w = await workdir('interop-up');
    try {
      const up = startUpstream(server, 'interop', w.mnt, [`--prefix=${tag}-up/`, '--blockSize=64k', '--size=8m'], { bin: upstream.bin });
      await up.ready;
      const model = await writePattern(w, join(w.mnt, 'file'));
      assert.equal((await stopUpstream(up)).code, 0);

      const ours = await startMount([...s3Flags(server), `--prefix=${tag}-up/`, 'interop', w.mnt], w.mnt);
      const read = await readFile(join(w.mnt, 'file'));
      assert.equal(read.length, SIZE, 'geometry auto-detected from upstream block 0');
      assert.ok(read.equals(model), 'content identical');
      assert.deepEqual(await ours.stop(), { code: 0, signal: null });
    } finally {
      await w.cleanup();
    }
  });

  test(`a bucket written by ours reads back identically through ${upstream.name}`, { skip, timeout: 300000 }, async () => {
    const w = await workdir('interop-ours');
    try {
      const ours = await startMount(
        [...s3Flags(server), `--prefix=${tag}-ours/`, '--blockSize=64k', `--size=${SIZE}`, 'interop', w.mnt],
        w.mnt,
      );
      const model = await writePattern(w, join(w.mnt, 'file'));
      assert.deepEqual(await ours.stop(), { code: 0, signal: null });

      const up = startUpstream(server, 'interop', w.mnt, [`--prefix=${tag}-ours/`, '--readOnly'], { bin: upstream.bin });
      await up.ready;
      const read = await readFile(join(w.mnt, 'file'));
      assert.equal(read.length, SIZE, 'upstream auto-detected our block 0 meta-data');
      assert.ok(read.equals(model), 'content identical');
      assert.equal((await stopUpstream(up)).code, 0);
    } finally {
      await w.cleanup();
    }
  });

  test(`an ext4 filesystem made through ours is clean and readable through ${upstream.name}`, { skip, timeout: 300000 }, async () => {
    const w = await workdir('interop-ext4');
    try {
      const ours = await startMount([...s3Flags(server), `--prefix=${tag}-fs/`, '--blockSize=64k', '--size=32m', 'interop', w.mnt], w.mnt);
      const file = join(w.mnt, 'file');
      await makeExt4(file);
      await loopMount(file, w.data);
      const payload = randomBytes(1 << 20);
      await writeFile(join(w.data, 'payload.bin'), payload);
      await run('umount', [w.data]);
      assert.deepEqual(await ours.stop(), { code: 0, signal: null });

      const up = startUpstream(server, 'interop', w.mnt, [`--prefix=${tag}-fs/`], { bin: upstream.bin });
      await up.ready;
      await run('e2fsck', ['-fn', file]);
      await loopMount(file, w.data, { readOnly: true });
      assert.ok((await readFile(join(w.data, 'payload.bin'))).equals(payload));
      await run('umount', [w.data]);
      assert.equal((await stopUpstream(up)).code, 0);
    } finally {
      await w.cleanup();
    }
  });
}
if (NEWEST_UPSTREAM_SKIP) test('buckets and ext4 both ways with upstream newest', { skip: NEWEST_UPSTREAM_SKIP }, () => {});
