// --statsFileMirror's update cycle on a real directory: removing the copy resets the counters,
// also when the removal lands while the next copy is being written.
import test from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { StatsMirror } from '../../dist/stats/statsMirror.js';

const quiet = { error() {}, warn() {}, info() {}, debug() {}, http() {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fresh directory for one test, removed when it ends. */
async function tempDir(t) {
  const dir = await mkdtemp(join(tmpdir(), 'mirror-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function waitFor(what, predicate) {
  for (let i = 0; i < 200; i++) {
    if (await predicate()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a copy removed while the next is being written still resets the counters', async (t) => {
  const path = join(await tempDir(t), 'stats.prom');
  let count = 7;
  let renders = 0;
  let resets = 0;
  const mirror = new StatsMirror(
    {
      path,
      intervalMs: 20,
      render() {
        // The second update: the user removes the copy just as the new one is rendered, after
        // any check done before rendering and before the rename that puts a copy back.
        if (++renders === 2) rmSync(path);
        return `puts ${count}\n`;
      },
      reset() {
        resets++;
        count = 0;
      },
    },
    quiet,
  );
  mirror.start();
  try {
    await waitFor('the reset', async () => resets > 0 && (await readFile(path, 'utf8').catch(() => '')) === 'puts 0\n');
  } finally {
    await mirror.stop();
  }
  assert.equal(resets, 1, 'one removal, one reset');
  assert.equal(await stat(`${path}.new`).catch(() => 'gone'), 'gone', 'no temporary file left');
});

test('an untouched copy never resets; stop({ final: true }) writes the last counts', async (t) => {
  const path = join(await tempDir(t), 'stats.prom');
  let count = 0;
  let resets = 0;
  const mirror = new StatsMirror({ path, intervalMs: 10, render: () => `puts ${++count}\n`, reset: () => resets++ }, quiet);
  mirror.start();
  await waitFor('a few updates', () => count >= 5);
  await mirror.stop({ final: true });
  assert.equal(resets, 0);
  assert.equal(await readFile(path, 'utf8'), `puts ${count}\n`, 'the copy left behind is the last render');
});

test('an error stops mirroring, once, without throwing', async (t) => {
  const dir = await tempDir(t);
  const errors = [];
  const mirror = new StatsMirror(
    { path: join(dir, 'missing-dir', 'stats.prom'), intervalMs: 10, render: () => 'x\n', reset() {} },
    { ...quiet, error: (m) => errors.push(m) },
  );
  mirror.start();
  await waitFor('the error', () => errors.length > 0);
  await sleep(50);
  await mirror.stop({ final: true });
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0], /ENOENT.*mirroring stopped/);
});
