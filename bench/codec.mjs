#!/usr/bin/env node
// The block codec pipeline (zero check, compress, encrypt, HMAC, Content-MD5) through the Rust
// addon against the same pipeline written with node:crypto and node:zlib, in blocks per second,
// at 64 KiB and 1 MiB, with 1 and 16 blocks in flight. Part of `npm run bench`.
import { createRequire } from 'node:module';
import { createCipheriv, createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { deflate } from 'node:zlib';
import { promisify } from 'node:util';

const require = createRequire(import.meta.url);
const { createBlockCodec, isZeroBlock } = require('../dist/native/addon.js');
const deflateAsync = promisify(deflate);
const SECONDS = Number(process.env.CODEC_BENCH_SECONDS ?? 1.5);

function jsCodec(password, salt) {
  const key = pbkdf2Sync(password, salt, 5000, 16, 'sha1');
  const ivkey = pbkdf2Sync(key, key, 5000, 16, 'sha1');
  return async (blockNum, data) => {
    if (data.every((b) => b === 0)) return null;
    const compressed = await deflateAsync(data);
    const n = Buffer.alloc(16);
    n.write(blockNum.toString(16).padStart(8, '0'), 'ascii');
    const ivCipher = createCipheriv('aes-128-cbc', ivkey, ivkey.subarray(0, 16)).setAutoPadding(false);
    const iv = ivCipher.update(n);
    const c = createCipheriv('aes-128-cbc', key, iv);
    const body = Buffer.concat([c.update(compressed), c.final()]);
    const hmac = createHmac('sha1', key).update(n.subarray(0, 8)).update('AES-128-CBC').update(body).digest('hex');
    return { body, hmac, md5: createHash('md5').update(body).digest() };
  };
}

/** A block that compresses about 2:1, like filesystem data. */
function sampleBlock(size) {
  const b = randomBytes(size);
  b.fill('s3backer block data ', size / 2);
  return b;
}

async function measure(encode, size, inflight) {
  const blocks = Array.from({ length: inflight }, () => sampleBlock(size));
  let done = 0;
  const deadline = performance.now() + SECONDS * 1000;
  await Promise.all(
    blocks.map(async (block, i) => {
      while (performance.now() < deadline) {
        await encode(i, block);
        done++;
      }
    }),
  );
  return done / SECONDS;
}

const native = createBlockCodec({ blockSize: 0, compression: 'deflate', cipher: 'AES-128-CBC', password: 'pw', salt: 'bucket/' });
const js = jsCodec('pw', 'bucket/');
void isZeroBlock;
const rows = [];
for (const size of [64 * 1024, 1024 * 1024]) {
  for (const inflight of [1, 16]) {
    const a = await measure((n, d) => native.encode(n, d), size, inflight);
    const b = await measure(js, size, inflight);
    rows.push({ size: size / 1024, inflight, addon: a, node: b });
  }
}
console.log('Encode pipeline (zero check, deflate, AES-128-CBC, HMAC-SHA1, MD5), blocks per second:\n');
console.log('| block | in flight | Rust addon | node:crypto + node:zlib | addon / node |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(`| ${r.size} KiB | ${r.inflight} | ${r.addon.toFixed(0)} | ${r.node.toFixed(0)} | ${(r.addon / r.node).toFixed(2)}x |`);
}
