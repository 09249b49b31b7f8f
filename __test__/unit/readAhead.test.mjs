// The read-ahead policy alone (src/layers/readAhead.ts): which blocks a read asks for.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ReadAhead } from '../../dist/layers/readAhead.js';
import { addRange, gaps } from '../../dist/layers/byteRanges.js';

const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);

test('read-ahead starts after --readAheadTrigger sequential reads and doubles its window up to 16x', () => {
  const ra = new ReadAhead({ readAhead: 4, readAheadTrigger: 2, size: 1000, numBlocks: 10000 });
  assert.deepEqual(ra.onRead(10), [], 'one read is not a sequence');
  assert.deepEqual(ra.onRead(10), [], 'reads within one block are one step');
  assert.deepEqual(ra.onRead(11), range(12, 16), 'the trigger: --readAhead blocks after the one read');
  assert.deepEqual(ra.onRead(12), range(13, 21), 'doubled');
  assert.deepEqual(ra.onRead(13), range(14, 30));
  assert.deepEqual(ra.onRead(14), range(15, 47));
  assert.deepEqual(ra.onRead(15), range(16, 80), '16x');
  assert.deepEqual(ra.onRead(16), range(17, 81), 'no further');
  assert.deepEqual(ra.onRead(500), [], 'a jump starts over');
  assert.deepEqual(ra.onRead(501), range(502, 506));
});

test('the window stays within a quarter of the cache (never under --readAhead) and the disk', () => {
  const small = new ReadAhead({ readAhead: 4, readAheadTrigger: 1, size: 20, numBlocks: 100 });
  assert.deepEqual(small.onRead(0), range(1, 5));
  assert.deepEqual(small.onRead(1), range(2, 7), 'a quarter of 20 slots');
  const tiny = new ReadAhead({ readAhead: 4, readAheadTrigger: 1, size: 8, numBlocks: 100 });
  tiny.onRead(0);
  assert.deepEqual(tiny.onRead(1), range(2, 6), '--readAhead even over a quarter of the cache');
  const edge = new ReadAhead({ readAhead: 4, readAheadTrigger: 1, size: 100, numBlocks: 12 });
  assert.deepEqual(edge.onRead(9), range(10, 12), 'the last block');
  assert.deepEqual(new ReadAhead({ readAhead: 0, readAheadTrigger: 1, size: 100, numBlocks: 100 }).onRead(0), [], '--readAhead=0 is off');
});

test("a block's filled byte ranges merge, and what is missing is their gaps", () => {
  let r = addRange([], 100, 200, 1000);
  assert.deepEqual(r, [[100, 200]]);
  r = addRange(r, 300, 400, 1000);
  r = addRange(r, 150, 320, 1000);
  assert.deepEqual(r, [[100, 400]]);
  assert.deepEqual(gaps(r, 1000), [
    [0, 100],
    [400, 1000],
  ]);
  assert.equal(addRange(addRange(r, 0, 100, 1000), 400, 1000, 1000), null, 'covered: the block is whole');
});
