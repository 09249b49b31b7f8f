import test from 'node:test';
import assert from 'node:assert/strict';

import { blockKey, blockHash, parseBlockKey, mountedFlagKey } from '../../dist/format/blockNames.js';

test('block keys are %08x after the prefix', () => {
  const plain = { prefix: '', blockHashPrefix: false };
  assert.equal(blockKey(plain, 0), '00000000');
  assert.equal(blockKey(plain, 0x1f), '0000001f');
  assert.equal(blockKey({ prefix: 'myprefix/', blockHashPrefix: false }, 0xa0b0c), 'myprefix/000a0b0c');
  assert.equal(blockKey(plain, 0xffffffff), 'ffffffff');
});

test('--blockHashPrefix matches upstream vectors', () => {
  const hashed = { prefix: '', blockHashPrefix: true };
  /** @type {[number, string][]} */
  const vectors = [
    [0, 'c448b72c-00000000'],
    [1, 'd211cad9-00000001'],
    [2, '7183baa1-00000002'],
    [0xff, '6ad31a26-000000ff'],
    [0x12345678, '7fbf2916-12345678'],
  ];
  for (const [n, key] of vectors) assert.equal(blockKey(hashed, n), key, `block ${n}`);
  assert.equal(blockHash(0), 0xc448b72c);
});

test('the mounted flag is never hashed', () => {
  assert.equal(mountedFlagKey({ prefix: 'p/', blockHashPrefix: true }), 'p/s3backer-mounted');
});

test('parseBlockKey is strict', () => {
  const plain = { prefix: 'p/', blockHashPrefix: false };
  assert.equal(parseBlockKey(plain, 'p/0000001f', 100), 31);
  assert.equal(parseBlockKey(plain, 'p/0000001F', 100), undefined, 'uppercase hex');
  assert.equal(parseBlockKey(plain, 'p/000001f', 100), undefined, '7 digits');
  assert.equal(parseBlockKey(plain, 'p/00000064', 100), undefined, 'block >= numBlocks');
  assert.equal(parseBlockKey(plain, 'q/00000001', 100), undefined, 'other prefix');
  assert.equal(parseBlockKey(plain, 'p/s3backer-mounted', 100), undefined);
  assert.equal(parseBlockKey(plain, 'p/00000001.Xy12ab', 100), undefined, 'temp file');
  const hashed = { prefix: '', blockHashPrefix: true };
  assert.equal(parseBlockKey(hashed, 'd211cad9-00000001', 10), 1);
  assert.equal(parseBlockKey(hashed, 'd211cad8-00000001', 10), undefined, 'wrong hash');
  assert.equal(parseBlockKey(hashed, '00000001', 10), undefined, 'hash missing');
});
