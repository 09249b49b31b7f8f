import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';

const require = createRequire(import.meta.url);
import { isZeroBlock, md5, md5Hex, blockDigest, blockDigestsAsync } from '../../dist/native/addon.js';
const batched = require('../../dist/backend/blockDigests.js');

test('isZeroBlock at several sizes and positions', () => {
  for (const len of [0, 1, 63, 64, 65, 4096, 65536 + 3]) {
    assert.equal(isZeroBlock(Buffer.alloc(len)), true, `zeros of ${len}`);
    for (const pos of len === 0 ? [] : [0, len >> 1, len - 1]) {
      const b = Buffer.alloc(len);
      b[pos] = 1;
      assert.equal(isZeroBlock(b), false, `len ${len} pos ${pos}`);
    }
  }
  const big = Buffer.alloc(100);
  big[1] = 9;
  assert.equal(isZeroBlock(big.subarray(2)), true, 'views at an offset');
  assert.equal(isZeroBlock(big.subarray(1)), false);
});

test('md5 and md5Hex agree with node:crypto', () => {
  for (const len of [0, 1, 4096, 65536 + 3]) {
    const data = randomBytes(len);
    const want = createHash('md5').update(data).digest();
    assert.ok(md5(data).equals(want), `md5 of ${len}`);
    assert.equal(md5Hex(data), want.toString('hex'));
  }
});

test('blockDigest: null for zeros, the MD5 otherwise', () => {
  assert.equal(blockDigest(Buffer.alloc(4096)), null);
  const data = Buffer.alloc(4096);
  data[4000] = 7;
  assert.ok(blockDigest(data).equals(createHash('md5').update(data).digest()));
});

test('blockDigestsAsync matches blockDigest, in order, zero blocks null, mixed lengths too', async () => {
  const blocks = Array.from({ length: 19 }, (_, i) => (i % 5 === 0 ? Buffer.alloc(65536) : randomBytes(i === 7 ? 100 : 65536)));
  const digests = await blockDigestsAsync(blocks);
  assert.equal(digests.length, 19);
  digests.forEach((d, i) => {
    if (i % 5 === 0) assert.equal(d, null);
    else assert.ok(d.equals(createHash('md5').update(blocks[i]).digest()), `block ${i}`);
  });
});

test("the upload path's digests, batched per turn of the event loop, each answer its own block", async () => {
  const blocks = Array.from({ length: 37 }, (_, i) => (i === 4 ? Buffer.alloc(4096) : randomBytes(4096)));
  // 37 in one turn (two full batches of sixteen and a rest), then one alone in a later turn.
  const digests = await Promise.all(blocks.map((b) => batched.blockDigest(b)));
  digests.forEach((d, i) =>
    i === 4 ? assert.equal(d, null) : assert.ok(d.equals(createHash('md5').update(blocks[i]).digest()), `block ${i}`),
  );
  const late = randomBytes(4096);
  assert.ok((await batched.blockDigest(late)).equals(createHash('md5').update(late).digest()));
});
