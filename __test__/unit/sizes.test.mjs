import test from 'node:test';
import assert from 'node:assert/strict';

import { parseSize, formatSize, isPowerOfTwo } from '../../dist/util/sizes.js';

test('sizes accept upstream suffixes', () => {
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('64K'), 65536);
  assert.equal(parseSize('1m'), 1 << 20);
  assert.equal(parseSize('2g'), 2 * 2 ** 30);
  assert.equal(parseSize('1t'), 2 ** 40);
  assert.equal(parseSize('3MB'), 3 * 2 ** 20);
});

test('bad sizes are refused', () => {
  for (const bad of ['', 'abc', '1x', '-5', '1.5g', '99999999999999999999e']) {
    assert.throws(() => parseSize(bad), /size/, bad);
  }
});

test('formatSize round-trips', () => {
  for (const n of [512, 4096, 65536, 2 ** 30, 3 * 2 ** 40, 1000]) assert.equal(parseSize(formatSize(n)), n);
  assert.equal(formatSize(1 << 20), '1m');
});

test('isPowerOfTwo', () => {
  assert.ok(isPowerOfTwo(1) && isPowerOfTwo(4096) && isPowerOfTwo(2 ** 40));
  assert.ok(!isPowerOfTwo(0) && !isPowerOfTwo(3000) && !isPowerOfTwo(-4));
});
