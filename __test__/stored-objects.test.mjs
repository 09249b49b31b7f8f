// What lands in the bucket is what upstream stores: for the same data written through ours and
// through upstream (Debian's 1.5.4, and the newest build when given), plain, --compress and
// --encrypt, the same block keys carry the same headers: Content-Type, Content-Encoding and every
// x-amz-meta-* (the HMAC's value differs where the compressed bytes do, so only its form is
// compared). A stray header (such as an "undefined" HMAC on compressed blocks) fails here.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server, listKeys, headObject } from './helpers/s3server.mjs';
import { UPSTREAM_BUILDS, NEWEST_UPSTREAM_SKIP, startUpstream, stopUpstream } from './helpers/upstream.mjs';
import { startMount, workdir, run, s3Flags } from './helpers/ours.mjs';

const SIZE = 1 << 20;
const BLOCK = 64 * 1024;
const MODES = {
  plain: [],
  compress: ['--compress'],
  encrypt: ['--encrypt'],
};
const HMAC = 'x-amz-meta-s3backer-hmac';

let server;
let w;
before(async () => {
  server = await startS3Server({ buckets: ['stored'] });
  w = await workdir('stored');
  await writeFile(join(w.root, 'password'), 'correct horse\n');
});
after(async () => {
  await w?.cleanup();
  await server?.stop();
});

/** The same bytes each time: random-looking, text-like (compressible) and zero blocks. */
function pattern() {
  const data = Buffer.alloc(SIZE);
  let x = 12345;
  for (let i = 0; i < 3 * BLOCK; i++) data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  data.write('the quick brown fox jumps over the lazy dog '.repeat(3000), 5 * BLOCK, 'latin1');
  data.fill(7, SIZE - BLOCK);
  return data;
}

async function writeThrough(file) {
  const src = join(w.root, 'pattern');
  await writeFile(src, pattern());
  await run('dd', [`if=${src}`, `of=${file}`, `bs=${BLOCK}`, 'conv=notrunc,fsync', 'status=none']);
  // A block of data overwritten with zeros: its object is deleted, by both.
  await run('dd', ['if=/dev/zero', `of=${file}`, `bs=${BLOCK}`, 'seek=1', 'count=1', 'conv=notrunc,fsync', 'status=none']);
}

/** Each block object's headers that s3backer sets: { key suffix: { header: value } }. */
async function storedHeaders(prefix) {
  const out = {};
  for (const key of await listKeys(server, 'stored', prefix)) {
    if (key.endsWith('s3backer-mounted')) continue;
    const { headers } = await headObject(server, 'stored', key);
    const picked = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name === 'content-type' || name === 'content-encoding' || name.startsWith('x-amz-meta-')) picked[name] = String(value);
    }
    out[key.slice(prefix.length)] = picked;
  }
  return out;
}

/** The HMAC's value depends on the compressed bytes (zlib implementations differ): compare its form. */
function comparable(headers) {
  const copy = { ...headers };
  if (copy[HMAC] !== undefined) {
    assert.match(copy[HMAC], /^"[0-9a-f]{40}"$/, `${HMAC} is a quoted 40-digit hex HMAC`);
    copy[HMAC] = '"<hmac>"';
  }
  return copy;
}

for (const upstream of UPSTREAM_BUILDS) {
  for (const [mode, flags] of Object.entries(MODES)) {
    test(`${mode}: every stored block carries the headers ${upstream.name} stores for the same data`, { timeout: 120000 }, async () => {
      const codecFlags = mode === 'encrypt' ? [...flags, `--passwordFile=${join(w.root, 'password')}`] : flags;
      const tag = `${mode}-${upstream.bin === UPSTREAM_BUILDS[0].bin ? 'debian' : 'newest'}`;
      // Suffixed: upstream's newest refuses a plain number of bytes ("invalid block size").
      const geometry = ['--blockSize=64k', '--size=1m'];

      const up = startUpstream(server, 'stored', w.mnt, [`--prefix=up-${tag}/`, ...geometry, ...codecFlags], { bin: upstream.bin });
      await up.ready;
      await writeThrough(join(w.mnt, 'file'));
      assert.equal((await stopUpstream(up)).code, 0, up.output());

      const ours = await startMount([...s3Flags(server), `--prefix=ours-${tag}/`, ...geometry, ...codecFlags, 'stored', w.mnt], w.mnt);
      await writeThrough(join(w.mnt, 'file'));
      assert.deepEqual(await ours.stop(), { code: 0, signal: null }, ours.stderr());

      const theirs = await storedHeaders(`up-${tag}/`);
      const mine = await storedHeaders(`ours-${tag}/`);
      assert.deepEqual(Object.keys(mine).sort(), Object.keys(theirs).sort(), 'the same blocks are stored');
      assert.ok(Object.keys(mine).length >= 4, 'blocks were stored');
      for (const key of Object.keys(theirs)) {
        assert.deepEqual(comparable(mine[key]), comparable(theirs[key]), `headers of block ${key}`);
      }
      for (const headers of Object.values(mine))
        assert.equal(headers[HMAC] !== undefined, mode === 'encrypt', `${HMAC} only when encrypting`);
    });
  }
}

// Without the newest build, the report says what was not compared.
if (NEWEST_UPSTREAM_SKIP) test('stored headers against upstream newest', { skip: NEWEST_UPSTREAM_SKIP }, () => {});
