import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readdirSync, statSync, readFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { runBundle } from '../../dist/cli/codeCache.js';

const codeCacheModule = new URL('../../dist/cli/codeCache.js', import.meta.url).pathname;

// A bundle that records what it ran as: the value in its text, its module variables and a
// relative require (which a vm script must be given explicitly).
const bundleText = (value) => `
  const side = require('./side.js');
  globalThis.codeCacheRuns.push({ value: '${value}', filename: __filename, dirname: __dirname, side, exportsOk: module.exports === exports });
`;

function setUp() {
  const dir = mkdtempSync(join(tmpdir(), 's3backer-code-cache-'));
  writeFileSync(join(dir, 'side.js'), 'module.exports = 42;\n');
  const file = join(dir, 'bundle.js');
  writeFileSync(file, bundleText('AAAA'));
  globalThis.codeCacheRuns = [];
  return { dir, file, cacheDir: join(dir, 'cache', 'code-cache') };
}

const lastRun = () => globalThis.codeCacheRuns.at(-1);

/**
 * Runs the bundle in a fresh Node: in this process V8 would find the text compiled already and not
 * look at a cache at all. Returns how the cache was used, what the bundle ran, and the save's result.
 */
function runFresh(file, cacheDir, save) {
  const script = `
    globalThis.codeCacheRuns = [];
    const { runBundle } = require(${JSON.stringify(codeCacheModule)});
    const run = runBundle(${JSON.stringify(file)}, ${JSON.stringify(cacheDir)});
    const saved = ${save ? 'run.save()' : 'undefined'};
    console.log(JSON.stringify({ cacheUse: run.cacheUse, ran: globalThis.codeCacheRuns[0], saved }));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
}

test('the bundle runs as a CommonJS module, and its cache made after the run is used by the next start', () => {
  const { dir, file, cacheDir } = setUp();
  const first = runFresh(file, cacheDir, true);
  assert.deepEqual(first, {
    cacheUse: 'none',
    ran: { value: 'AAAA', filename: file, dirname: dir, side: 42, exportsOk: true },
    saved: true,
  });
  const [name] = readdirSync(cacheDir);
  assert.match(name, /^cli-[0-9a-f]{8}-.+\.bin$/);
  assert.equal(statSync(join(cacheDir, name)).mode & 0o777, 0o600);
  assert.equal(statSync(cacheDir).mode & 0o777, 0o700);

  const second = runFresh(file, cacheDir, true);
  assert.equal(second.cacheUse, 'used');
  assert.equal(second.ran.value, 'AAAA');
  assert.equal(second.saved, false, 'a cache that was used is not written again');
});

test('a cache made from another bundle of the same length is not used: the new text runs', () => {
  const { file, cacheDir } = setUp();
  assert.ok(runFresh(file, cacheDir, true).saved);
  // Same length: V8 alone would take the old cache (it checks the source by its length only).
  writeFileSync(file, bundleText('BBBB'));
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  const run = runFresh(file, cacheDir, true);
  assert.equal(run.cacheUse, 'stale');
  assert.equal(run.ran.value, 'BBBB');
  assert.ok(run.saved);
  const again = runFresh(file, cacheDir, false);
  assert.equal(again.cacheUse, 'used');
  assert.equal(again.ran.value, 'BBBB');
});

test('a damaged cache is rejected by V8, the bundle still runs, and the cache is written again', () => {
  const { file, cacheDir } = setUp();
  assert.ok(runFresh(file, cacheDir, true).saved);
  const [name] = readdirSync(cacheDir);
  const path = join(cacheDir, name);
  const data = readFileSync(path);
  const header = data.indexOf(10) + 1;
  data.fill(0x5a, header, header + 4); // V8's magic number
  writeFileSync(path, data);
  const run = runFresh(file, cacheDir, true);
  assert.equal(run.cacheUse, 'rejected');
  assert.equal(run.ran.value, 'AAAA');
  assert.ok(run.saved);
  assert.equal(runFresh(file, cacheDir, false).cacheUse, 'used');
});

test('without a writable cache directory the bundle runs and saving reports failure', () => {
  const { dir, file } = setUp();
  const blocked = join(dir, 'side.js', 'cache'); // under a file: mkdir fails
  const run = runBundle(file, blocked);
  assert.equal(run.cacheUse, 'none');
  assert.equal(run.save(), false);
  assert.equal(runBundle(file, undefined).cacheUse, 'none');
  assert.deepEqual(
    globalThis.codeCacheRuns.map((r) => r.value),
    ['AAAA', 'AAAA'],
  );
});
