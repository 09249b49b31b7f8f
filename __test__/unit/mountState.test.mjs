import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
import { DirObjectStore } from '../../dist/backend/dirObjectStore.js';
import { combineGeometry, detectGeometry } from '../../dist/mount/geometry.js';
import { readMountedFlag, claimMountedFlag, releaseMountedFlag } from '../../dist/mount/mountedFlag.js';
import { ConditionFailedError } from '../../dist/backend/objectStore.js';
import { ConfigError } from '../../dist/errors.js';
const REPO = join(import.meta.dirname, '..', '..');
import { silentLogger } from '../../dist/util/log.js';

const naming = { prefix: '', blockHashPrefix: false };

/** A fresh directory for one test, removed when it ends. */
function tempDir(t, prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** --blockSize and --size not given: undefined, as the parser leaves them. */
const noGeometry = { blockSize: undefined, size: undefined };

test('geometry: flags, auto-detection, mismatch and --force', () => {
  const detected = { blockSize: 65536, fileSize: 2 ** 30 };
  const auto = combineGeometry({ ...noGeometry, force: false }, detected, silentLogger);
  assert.equal(auto.blockSize, 65536);
  assert.equal(auto.numBlocks, 2 ** 14);
  assert.throws(
    () => combineGeometry({ ...noGeometry, size: 2 ** 31, force: false }, detected, silentLogger),
    /differs from the auto-detected.*--force/,
  );
  assert.throws(() => combineGeometry({ ...noGeometry, blockSize: 4096, force: false }, detected, silentLogger), /--blockSize 4k differs/);
  const forced = combineGeometry({ ...noGeometry, size: 2 ** 31, force: true }, detected, silentLogger);
  assert.equal(forced.fileSize, 2 ** 31);
  assert.throws(() => combineGeometry({ ...noGeometry, force: false }, undefined, silentLogger), /--size is required/);
  const fresh = combineGeometry({ ...noGeometry, size: 1 << 20, force: false }, undefined, silentLogger);
  assert.equal(fresh.blockSize, 4096);
  assert.equal(fresh.numBlocks, 256);
});

test('geometry is detected from block 0 metadata', async (t) => {
  const dir = tempDir(t, 's3b-geo-');
  const objects = new DirObjectStore(dir);
  assert.equal(await detectGeometry(objects, naming), undefined);
  await objects.put('00000000', Buffer.alloc(4096, 1), {
    contentType: 'application/x-s3backer-block',
    metadata: { 's3backer-blocksize': '4096', 's3backer-filesize': '8388608' },
  });
  assert.deepEqual(await detectGeometry(objects, naming), { blockSize: 4096, fileSize: 8388608 });
});

test('mounted flag: claimed with token and host, read, released', async (t) => {
  const dir = tempDir(t, 's3b-flag-');
  const objects = new DirObjectStore(dir);
  const absent = await readMountedFlag(objects, naming);
  assert.equal(absent.mounted, false);
  const claim = await claimMountedFlag(objects, naming, 0x1234abcd, absent, silentLogger);
  assert.equal(claim.token, '1234abcd');
  const state = await readMountedFlag(objects, naming);
  assert.equal(state.mounted, true);
  assert.equal(state.token, '1234abcd');
  assert.equal(state.etag, claim.etag);
  assert.equal(state.host, hostname());
  assert.match(readFileSync(join(dir, 's3backer-mounted'), 'utf8'), /^.+\n\d{8}T\d{6}Z\n$/);
  await releaseMountedFlag(objects, naming, claim, silentLogger);
  assert.equal((await readMountedFlag(objects, naming)).present, false);
});

test("mounted flag: a claim on a stale reading loses with the holder named; a release leaves another mount's flag", async (t) => {
  const dir = tempDir(t, 's3b-flag-');
  const objects = new DirObjectStore(dir);
  const absent = await readMountedFlag(objects, naming);
  const first = await claimMountedFlag(objects, naming, 0x11111111, absent, silentLogger);
  // The second mount read the flag before the first wrote it.
  await assert.rejects(claimMountedFlag(objects, naming, 0x22222222, absent, silentLogger), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.match(
      err.message,
      new RegExp(`was mounted by host ${hostname()} since \\d{8}T\\d{6}Z while this mount was starting: not mounted`),
    );
    return true;
  });
  assert.equal((await readMountedFlag(objects, naming)).token, '11111111', "the winner's flag untouched");
  // --force: takes over the flag it saw; the first mount's release then leaves it, with a warning.
  const seen = await readMountedFlag(objects, naming);
  const forced = await claimMountedFlag(objects, naming, 0x33333333, seen, silentLogger);
  // Same host, likely the same second: the claim waited for a body (and so an ETag) of its own.
  assert.notEqual(forced.etag, first.etag);
  const warnings = [];
  await releaseMountedFlag(objects, naming, first, { ...silentLogger, warn: (m) => warnings.push(m) });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /no longer this mount's \(host .* holds it\): another mount took it over; leaving it set/);
  assert.equal((await readMountedFlag(objects, naming)).token, '33333333');
  // A forced claim on a reading that is stale again (the flag changed since) loses too.
  await assert.rejects(claimMountedFlag(objects, naming, 0x44444444, seen, silentLogger), /while this mount was starting/);
  await releaseMountedFlag(objects, naming, forced, silentLogger);
  assert.equal((await readMountedFlag(objects, naming)).present, false);
});

test('--test directory store: conditional puts and deletes as S3 answers them', async (t) => {
  const dir = tempDir(t, 's3b-cond-');
  const objects = new DirObjectStore(dir);
  const put = (body, condition) => objects.put('k', Buffer.from(body), { contentType: 'text/plain', condition });
  const failed = (status) => (err) => err instanceof ConditionFailedError && err.status === status;
  await assert.rejects(put('x', { ifMatch: '"00"' }), failed(404), 'If-Match on a missing key');
  const a = await put('a', { ifNoneMatch: '*' });
  assert.equal(a.etag, `"${createHash('md5').update('a').digest('hex')}"`);
  assert.equal((await objects.head('k')).etag, a.etag);
  await assert.rejects(put('b', { ifNoneMatch: '*' }), failed(412), 'create-exclusive on an existing key');
  await assert.rejects(put('b', { ifMatch: '"0123"' }), failed(412), 'a wrong ETag');
  const b = await put('b', { ifMatch: a.etag });
  await assert.rejects(put('c', { ifMatch: a.etag }), failed(412), 'the replaced ETag');
  await assert.rejects(objects.delete('k', { ifMatch: a.etag }), failed(412));
  assert.equal((await objects.get('k')).body.toString(), 'b');
  await objects.delete('k', { ifMatch: b.etag });
  assert.equal(await objects.get('k'), null);
  await objects.delete('k', { ifMatch: b.etag }); // missing: deleted already
  assert.deepEqual(
    readdirSync(dir).filter((n) => !n.startsWith('.')),
    [],
    'lock files are hidden from listings',
  );
});

test('--test directory store: of many processes claiming the flag at once, exactly one wins', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t, 's3b-claim-');
  const claimer = `
    const { DirObjectStore } = require(${JSON.stringify(join(REPO, 'dist/backend/dirObjectStore.js'))});
    const { claimMountedFlag } = require(${JSON.stringify(join(REPO, 'dist/mount/mountedFlag.js'))});
    const { silentLogger } = require(${JSON.stringify(join(REPO, 'dist/util/log.js'))});
    const absent = { present: false, mounted: false };
    process.stdin.once('data', async () => {
      try {
        const c = await claimMountedFlag(new DirObjectStore(process.argv[1]), { prefix: process.argv[2], blockHashPrefix: false }, Number(process.argv[3]), absent, silentLogger);
        process.stdout.write('won ' + c.token);
      } catch (err) {
        process.stdout.write(/while this mount was starting/.test(err.message) ? 'lost' : 'error ' + err.message);
      }
    });`;
  for (let round = 0; round < 5; round++) {
    const prefix = `r${round}/`;
    const children = Array.from({ length: 6 }, (_, i) => {
      const child = spawn(process.execPath, ['-e', claimer, dir, prefix, String(0x100 + i)], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      return { child, done: new Promise((r) => child.on('exit', () => r(out))), ready: new Promise((r) => child.on('spawn', r)) };
    });
    await Promise.all(children.map((c) => c.ready));
    await new Promise((r) => setTimeout(r, 300)); // every child has loaded its modules
    for (const c of children) c.child.stdin.end('go');
    const outcomes = await Promise.all(children.map((c) => c.done));
    const winners = outcomes.filter((o) => o.startsWith('won'));
    assert.equal(winners.length, 1, outcomes.join(', '));
    assert.equal(outcomes.filter((o) => o === 'lost').length, 5, outcomes.join(', '));
    const flag = await readMountedFlag(new DirObjectStore(dir), { prefix, blockHashPrefix: false });
    assert.equal(`won ${flag.token}`, winners[0]);
  }
});
