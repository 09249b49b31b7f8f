// Upstream's retry schedule, as the S3 client and the eventual-consistency guard both take it.
import test from 'node:test';
import assert from 'node:assert/strict';

import { retryPauses } from '../../dist/util/retryPauses.js';

test('pauses double from --initialRetryPause and stop before they add up to more than --maxRetryPause', () => {
  assert.deepEqual([...retryPauses({ initialRetryPauseMs: 200, maxRetryPauseMs: 30000 })], [200, 400, 800, 1600, 3200, 6400, 12800]);
  assert.deepEqual([...retryPauses({ initialRetryPauseMs: 100, maxRetryPauseMs: 700 })], [100, 200, 400]);
  assert.deepEqual([...retryPauses({ initialRetryPauseMs: 100, maxRetryPauseMs: 699 })], [100, 200]);
  assert.deepEqual([...retryPauses({ initialRetryPauseMs: 500, maxRetryPauseMs: 100 })], [], 'a first pause over the budget: no retry');
});
