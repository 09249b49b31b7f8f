// The loop guard's decisions against a plain LRU cache simulated here: it holds for a loop a
// little bigger than the cache, never for one long scan or for random reads over a big disk.
import test from 'node:test';
import assert from 'node:assert/strict';

import { LoopGuard, cyclingSlots } from '../../dist/layers/loopGuard.js';

/** Feeds `reads` through an LRU of `size` blocks; returns the read index of each hold and release. */
function run(size, reads) {
  const guard = new LoopGuard(size);
  const lru = new Map();
  const events = [];
  reads.forEach((b, i) => {
    if (lru.delete(b)) return void lru.set(b, true);
    if (lru.size >= size) {
      const [victim] = lru.keys();
      lru.delete(victim);
      guard.evicted(victim);
    }
    lru.set(b, true);
    const action = guard.loaded(b);
    if (action) events.push([action, i]);
  });
  return events;
}

const loop = (blocks, passes) => Array.from({ length: blocks * passes }, (_, i) => i % blocks);

test('a loop over 1.2 times the cache holds during its second pass, and stays held', () => {
  const events = run(1000, loop(1200, 4));
  assert.equal(events.length, 1, JSON.stringify(events));
  assert.equal(events[0][0], 'hold');
  assert.ok(events[0][1] > 1200 && events[0][1] < 1400, `held at read ${events[0][1]}`);
});

test('one long scan, and random reads over ten times the cache, never hold', () => {
  assert.deepEqual(
    run(
      1000,
      Array.from({ length: 20000 }, (_, i) => i),
    ),
    [],
  );
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  assert.deepEqual(
    run(
      1000,
      Array.from({ length: 50000 }, () => Math.floor(random() * 10000)),
    ),
    [],
  );
});

test('a hold ends soon after the reads turn to blocks not seen lately', () => {
  const reads = [...loop(1200, 3), ...Array.from({ length: 500 }, (_, i) => 5000 + i)];
  const events = run(1000, reads);
  assert.deepEqual(
    events.map((e) => e[0]),
    ['hold', 'release'],
  );
  assert.ok(events[1][1] - 3600 < 40, `released ${events[1][1] - 3600} reads into the new blocks`);
});

test('cycling slots: past the widest read-ahead window, a sixteenth of the cache at least, half at most', () => {
  assert.equal(cyclingSlots(1000, 4), 96);
  assert.equal(cyclingSlots(100000, 4), 6250);
  assert.equal(cyclingSlots(100, 4), 50);
});
