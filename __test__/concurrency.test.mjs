// Many writers and readers on the same blocks at once, through a cache too small to hold them
// (so blocks are evicted, uploaded and fetched again while others write into them). Each writer
// owns interleaved 512-byte stripes of every block and rewrites them at random; the final content,
// read through a fresh mount with no cache, must equal the model built from each writer's last
// value per stripe. Readers run throughout and must never see an error.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server } from './helpers/s3server.mjs';
import { startMount, workdir, run, s3Flags } from './helpers/ours.mjs';

// Whatever is still running when the test ends (say, after a timeout) is killed, so a hang fails
// this file instead of keeping its process (and the whole test run) alive.
const running = new Set();
after(() => {
  for (const p of running) p.kill('SIGKILL');
});
const env = useS3Server('concurrency', { before, after, workdir });

const STRIPE = 512;
const REGION = 256 * 1024; // 64 blocks of 4 KiB, every one shared by all writers
const WRITERS = 6;
const READERS = 3;

// A writer: rewrites its own stripes (index % WRITERS == k) at random, each with fresh random
// bytes, then prints the last value of every stripe it wrote (base64, by stripe index).
const writerScript = `
const fs = require('fs'), crypto = require('crypto');
const [file, k, n, writes] = process.argv.slice(1);
const fd = fs.openSync(file, 'r+');
const mine = [];
for (let s = Number(k); s < ${REGION / STRIPE}; s += Number(n)) mine.push(s);
const last = {};
for (let i = 0; i < Number(writes); i++) {
  const s = mine[crypto.randomInt(mine.length)];
  const data = crypto.randomBytes(${STRIPE});
  fs.writeSync(fd, data, 0, data.length, s * ${STRIPE});
  last[s] = data.toString('base64');
}
fs.closeSync(fd);
process.stdout.write(JSON.stringify(last));
`;

// A reader: random reads across the region until told to stop; prints how many it did.
const readerScript = `
const fs = require('fs'), crypto = require('crypto');
const fd = fs.openSync(process.argv[1], 'r');
const buf = Buffer.alloc(16384);
let reads = 0, stop = false;
process.on('SIGTERM', () => (stop = true));
(function loop() {
  for (let i = 0; i < 20; i++) {
    const len = 1 + crypto.randomInt(buf.length);
    fs.readSync(fd, buf, 0, len, crypto.randomInt(${REGION} - len));
    reads++;
  }
  if (stop) { process.stdout.write(String(reads)); process.exit(0); }
  setImmediate(loop);
})();
`;

function child(script, args) {
  const proc = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  const done = new Promise((resolve) => proc.on('exit', (code) => resolve({ code, out, err })));
  return { proc, done };
}

test('concurrent writers and readers on shared blocks: the stored result equals the model of the writes', { timeout: 180000 }, async () => {
  const flags = [...s3Flags(env.server), '--prefix=cc/', '--blockSize=4k', '--size=1m', '--blockCacheWriteDelay=20'];
  let m = await startMount([...flags, '--blockCacheSize=16', 'disk', env.w.mnt], env.w.mnt);
  running.add(m.child);
  const file = join(env.w.mnt, 'file');
  const model = Buffer.alloc(REGION);
  try {
    const readers = Array.from({ length: READERS }, () => child(readerScript, [file]));
    const writers = await Promise.all(
      Array.from({ length: WRITERS }, (_, k) => child(writerScript, [file, String(k), String(WRITERS), '400']).done),
    );
    for (const r of readers) r.proc.kill('SIGTERM');
    const readResults = await Promise.all(readers.map((r) => r.done));
    for (const r of readResults) {
      assert.equal(r.code, 0, `a reader failed: ${r.err}`);
      assert.ok(Number(r.out) > 0);
    }
    let written = 0;
    for (const res of writers) {
      assert.equal(res.code, 0, `a writer failed: ${res.err}`);
      for (const [s, b64] of Object.entries(JSON.parse(res.out))) {
        Buffer.from(b64, 'base64').copy(model, Number(s) * STRIPE);
        written++;
      }
    }
    assert.ok(written > 200, `${written} stripes written`);
    await run('sync', ['-d', file]);
    // While mounted, the file agrees with the model too.
    assert.ok((await readFile(file)).subarray(0, REGION).equals(model), 'the mounted file matches the model');
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  m = await startMount([...flags, '--blockCacheSize=0', 'disk', env.w.mnt], env.w.mnt);
  running.add(m.child);
  try {
    const stored = (await readFile(file)).subarray(0, REGION);
    assert.ok(stored.equals(model), 'what S3 holds matches the model');
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});
