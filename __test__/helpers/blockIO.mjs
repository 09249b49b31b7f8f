// Block-sized I/O on a mounted backed file through dd, as a user's tools would do it, and what S3
// holds read back through a fresh mount. `dir` is a scratch directory for dd's input and output.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { run, startMount, s3Flags } from './ours.mjs';

/** Writes `data` at `offset` (a multiple of `bs`) of the backed file, fsync included unless told. */
export async function writeAt(dir, file, offset, data, { bs = 65536, fsync = true } = {}) {
  const src = join(dir, `src-${offset}.bin`);
  await writeFile(src, data);
  return run('dd', [`if=${src}`, `of=${file}`, `bs=${bs}`, `seek=${offset / bs}`, `conv=notrunc${fsync ? ',fsync' : ''}`, 'status=none']);
}

/** Reads `length` bytes at `offset` with O_DIRECT (past the kernel's cache, into ours or S3). */
export async function readAt(dir, file, offset, length, { bs = 65536 } = {}) {
  const out = join(dir, `out-${offset}.bin`);
  await run('dd', [`if=${file}`, `of=${out}`, `bs=${bs}`, `skip=${offset / bs}`, `count=${length / bs}`, 'iflag=direct', 'status=none']);
  return readFile(out);
}

/** The first `length` bytes S3 holds under `prefix` of bucket "disk", through a fresh mount with no cache. */
export async function contentInS3(server, w, prefix, length, flags = []) {
  const m = await startMount([...s3Flags(server), `--prefix=${prefix}`, ...flags, '--blockCacheSize=0', 'disk', w.mnt], w.mnt);
  try {
    return await readAt(w.root, join(w.mnt, 'file'), 0, length);
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
}
