import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { DirObjectStore } = require('../dist/backend/dirObjectStore.js');
const { combineGeometry, detectGeometry } = require('../dist/mount/geometry.js');
const { readMountedFlag, setMountedFlag, clearMountedFlag } = require('../dist/mount/mountedFlag.js');
const { silentLogger } = require('../dist/util/log.js');

const naming = { prefix: '', blockHashPrefix: false };

test('geometry: flags, auto-detection, mismatch and --force', () => {
  const detected = { blockSize: 65536, fileSize: 2 ** 30 };
  const auto = combineGeometry({ force: false }, detected, silentLogger);
  assert.equal(auto.blockSize, 65536);
  assert.equal(auto.numBlocks, 2 ** 14);
  assert.throws(() => combineGeometry({ size: 2 ** 31, force: false }, detected, silentLogger), /differs from the auto-detected.*--force/);
  assert.throws(() => combineGeometry({ blockSize: 4096, force: false }, detected, silentLogger), /--blockSize 4k differs/);
  const forced = combineGeometry({ size: 2 ** 31, force: true }, detected, silentLogger);
  assert.equal(forced.fileSize, 2 ** 31);
  assert.throws(() => combineGeometry({ force: false }, undefined, silentLogger), /--size is required/);
  const fresh = combineGeometry({ size: 1 << 20, force: false }, undefined, silentLogger);
  assert.equal(fresh.blockSize, 4096);
  assert.equal(fresh.numBlocks, 256);
});

test('geometry is detected from block 0 metadata', async () => {
  const dir = mkdtempSync(join(tmpdir(), 's3b-geo-'));
  try {
    const objects = new DirObjectStore(dir);
    assert.equal(await detectGeometry(objects, naming), undefined);
    await objects.put('00000000', Buffer.alloc(4096, 1), {
      contentType: 'application/x-s3backer-block',
      metadata: { 's3backer-blocksize': '4096', 's3backer-filesize': '8388608' },
    });
    assert.deepEqual(await detectGeometry(objects, naming), { blockSize: 4096, fileSize: 8388608 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mounted flag: set with token and host, read, cleared', async () => {
  const dir = mkdtempSync(join(tmpdir(), 's3b-flag-'));
  try {
    const objects = new DirObjectStore(dir);
    assert.equal((await readMountedFlag(objects, naming)).mounted, false);
    const token = await setMountedFlag(objects, naming, new Date('2026-01-02T03:04:05Z'));
    assert.match(token, /^[0-9a-f]{8}$/);
    assert.notEqual(token, '00000000');
    const state = await readMountedFlag(objects, naming);
    assert.equal(state.mounted, true);
    assert.equal(state.token, token);
    assert.match(readFileSync(join(dir, 's3backer-mounted'), 'utf8'), /^.+\n20260102T030405Z\n$/);
    await clearMountedFlag(objects, naming);
    assert.equal((await readMountedFlag(objects, naming)).mounted, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
