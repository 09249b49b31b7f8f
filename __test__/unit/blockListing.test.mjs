// The ranged listing on its own, over an in-memory object store that pages like S3 (3 keys a
// page here) and honours StartAfter: every split finds exactly what one plain listing finds,
// each block once, and each range's requests stay inside it.
import test from 'node:test';
import assert from 'node:assert/strict';

import { listBlockObjects, listingRanges, splitKeySpace } from '../../dist/backend/blockListing.js';
import { blockKey, hex8, MAX_BLOCKS } from '../../dist/format/blockNames.js';

/** @typedef {import('../../dist/backend/objectStore.js').ObjectStore} ObjectStore */
/** @typedef {import('../../dist/backend/objectStore.js').ListOptions} ListOptions */
/** @typedef {import('../../dist/backend/blockListing.js').BlockListingOptions} BlockListingOptions */
/** @typedef {Pick<ObjectStore, 'listsInParallel' | 'list'>} ListingStore */

/** @implements {ListingStore} */
class PagedStore {
  /**
   * @param {string[]} keys
   * @param {{ parallel?: boolean, pageSize?: number }} [options]
   */
  constructor(keys, { parallel = true, pageSize = 3 } = {}) {
    this.keys = [...keys].sort();
    this.listsInParallel = parallel;
    this.pageSize = pageSize;
    /** @type {{ startAfter: string, after: string, page: string[] }[]} */
    this.requests = [];
  }
  /**
   * @param {string} prefix
   * @param {import('../../dist/backend/objectStore.js').KeysCallback} onKeys
   * @param {ListOptions} [options]
   */
  async list(prefix, onKeys, { startAfter = '', signal } = {}) {
    let after = startAfter;
    for (;;) {
      signal?.throwIfAborted();
      await new Promise((r) => setImmediate(r));
      const page = this.keys.filter((k) => k.startsWith(prefix) && k > after).slice(0, this.pageSize);
      this.requests.push({ startAfter, after, page });
      if (page.length === 0 || onKeys(page) === false || page.length < this.pageSize) return;
      after = page.at(-1);
    }
  }
}

/**
 * The listing needs only `list` and `listsInParallel` of its object store, all the double has:
 * the cast says the rest is deliberately missing.
 * @param {ListingStore} store
 * @returns {ObjectStore}
 */
const asObjectStore = (store) => /** @type {ObjectStore} */ (store);

/**
 * @param {ListingStore} store
 * @param {BlockListingOptions} options
 */
async function list(store, options) {
  const found = [];
  const done = [];
  await listBlockObjects(
    asObjectStore(store),
    options,
    (n, key) => found.push([n, key]),
    (r) => done.push(r),
  );
  return { found: found.sort((a, b) => a[0] - b[0]), done };
}

test('ranges: near-equal, disjoint, in order, never empty; the last one reaches the end', () => {
  assert.deepEqual(splitKeySpace(10, 4), [
    { first: 0, end: 2 },
    { first: 2, end: 5 },
    { first: 5, end: 7 },
    { first: 7, end: 10 },
  ]);
  assert.deepEqual(splitKeySpace(3, 16).length, 3, 'never more ranges than numbers');
  const naming = { prefix: 'p/', blockHashPrefix: false };
  assert.deepEqual(listingRanges({ ...naming, numBlocks: MAX_BLOCKS, spread: 100, threads: 2 }, true), [
    { first: 0, end: 50 },
    { first: 50, end: MAX_BLOCKS },
  ]);
  assert.deepEqual(listingRanges({ ...naming, numBlocks: 100, threads: 2 }, false), [{ first: 0, end: MAX_BLOCKS }], 'one plain listing');
  assert.equal(listingRanges({ ...naming, blockHashPrefix: true, numBlocks: 100, threads: 4 }, true).at(-1).end, MAX_BLOCKS);
});

for (const blockHashPrefix of [false, true]) {
  test(`every split finds what one listing finds${blockHashPrefix ? ' (hash prefix)' : ''}`, async () => {
    const naming = { prefix: 'd/', blockHashPrefix };
    const numBlocks = 200;
    const stored = [0, 1, 2, 49, 50, 51, 99, 100, 150, 198, 199];
    const junk = ['d/s3backer-mounted', 'd/zzz', 'd/0000000A', `d/${hex8(numBlocks)}`, 'e/00000005', `d/${hex8(5)}-`];
    const keys = [...stored.map((n) => blockKey(naming, n)), ...junk];
    const expected = stored.map((n) => [n, blockKey(naming, n)]);
    const serial = await list(new PagedStore(keys, { parallel: false }), { ...naming, numBlocks, threads: 8 });
    assert.deepEqual(serial.found, expected);
    for (const threads of [1, 2, 3, 7, 16, 500]) {
      const store = new PagedStore(keys);
      const { found, done } = await list(store, { ...naming, numBlocks, threads });
      assert.deepEqual(found, expected, `${threads} listers: each block once`);
      assert.equal(done.length, listingRanges({ ...naming, numBlocks, threads }, true).length, 'every range reported done');
      if (!blockHashPrefix) {
        // Each range stops at the first key past its end: no page starts beyond it.
        for (const r of store.requests)
          assert.ok(r.after < `d/${hex8(numBlocks)}` || r.startAfter === '', `no request past the disk: ${r.after}`);
      }
    }
  });
}

test('a failing range stops the others and is the rejection; an abort ends it with its reason', async () => {
  const naming = { prefix: 'd/', blockHashPrefix: false };
  const keys = Array.from({ length: 60 }, (_, n) => blockKey(naming, n));
  const store = new PagedStore(keys);
  const list = store.list.bind(store);
  store.list = (prefix, onKeys, options) =>
    options.startAfter === 'd/0000001d' ? Promise.reject(new Error('range 2 broke')) : list(prefix, onKeys, options);
  const done = [];
  await assert.rejects(
    listBlockObjects(
      asObjectStore(store),
      { ...naming, numBlocks: 60, threads: 4 },
      () => {},
      (r) => done.push(r),
    ),
    /range 2 broke/,
  );
  assert.ok(!done.some((r) => r.first === 30), 'the failed range is never done');
  const controller = new AbortController();
  controller.abort(new Error('unmounting'));
  await assert.rejects(
    listBlockObjects(asObjectStore(new PagedStore(keys)), { ...naming, numBlocks: 60, threads: 4, signal: controller.signal }, () => {}),
    /unmounting/,
  );
});
