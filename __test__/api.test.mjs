// The programmatic API: mount(options) with the CLI's flags as an object, the handle's stats(),
// flush() and unmount(), and the cache-file inspection function, through the package's entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFile, writeFile, readdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { workdir, isMounted, REPO } from './helpers/ours.mjs';

const require = createRequire(import.meta.url);
const api = require('../dist/index.js');
const CHILD = join(REPO, '__test__', 'helpers', 'apiChild.mjs');

/** Starts the API child; resolves once it has mounted (or rejects with its error line). */
async function mountInChild(options) {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const waiters = [];
  let buffered = '';
  child.stdout.on('data', (d) => {
    buffered += d;
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      lines.push(buffered.slice(0, i));
      buffered = buffered.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const next = async (prefix, ms = 30000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = lines.findIndex((l) => l.startsWith(prefix) || l.startsWith('error'));
      if (i >= 0) {
        const [line] = lines.splice(i, 1);
        if (line.startsWith('error') && !prefix.startsWith('error')) throw new Error(line);
        return line.slice(prefix.length).trim();
      }
      if (Date.now() > deadline) throw new Error(`no "${prefix}" line from the API child; got ${JSON.stringify(lines)}`);
      await Promise.race([new Promise((r) => waiters.push(r)), exited, new Promise((r) => setTimeout(r, 200))]);
    }
  };
  const send = (line) => child.stdin.write(`${line}\n`);
  return { child, next, send, exited };
}

test('configFor checks flags as the command line does, before anything mounts', () => {
  const base = { bucket: '/tmp/nowhere', mountpoint: '/tmp/nowhere-mnt' };
  const refused = (flags, pattern) =>
    assert.throws(
      () => api.configFor({ ...base, flags }),
      (e) => e instanceof api.ConfigError && pattern.test(e.message),
    );
  refused({ test: true, noSuchFlag: 1 }, /unknown option noSuchFlag/);
  refused({ test: true, '--size': '1m' }, /without dashes/);
  refused({ test: true, readOnly: 'yes' }, /readOnly takes no value/);
  refused({ test: true, blockSize: true }, /blockSize needs a value/);
  refused({ test: true, blockSize: '3k', size: '1m' }, /block size|blockSize/i);
  const config = api.configFor({
    ...base,
    flags: { test: true, blockSize: '4k', size: '1m', readOnly: true, blockCacheSize: 20, compress: false },
  });
  assert.equal(config.readOnly, true);
  assert.equal(config.blockCache.size, 20, 'numbers are accepted as values');
  assert.equal(config.codec.compression, undefined, 'false leaves a flag out');
  assert.equal(
    api.configFor({ ...base, flags: { test: true, compress: true } }).codec.compression,
    'deflate',
    'true on an optional value is the flag alone',
  );
});

test('mount(options): write through the file, flush() stores it, stats() counts it, unmount() ends it; a remount reads it back', async () => {
  const dirs = await workdir('api');
  try {
    const options = { bucket: dirs.store, mountpoint: dirs.mnt, flags: { test: true, blockSize: '4k', size: '1m' } };
    let m = await mountInChild(options);
    assert.equal(Number(await m.next('ready')), 1024 * 1024, 'the handle reports the geometry');
    assert.ok(await isMounted(dirs.mnt));
    const data = Buffer.alloc(3 * 4096, 0x5a);
    const fh = await open(join(dirs.mnt, 'file'), 'r+');
    await fh.write(data, 0, data.length, 8192);
    await fh.close();
    m.send('flush');
    await m.next('flushed');
    const stored = (await readdir(dirs.store)).filter((f) => /^[0-9a-f]{8}$/.test(f));
    assert.deepEqual(stored.sort(), ['00000002', '00000003', '00000004'], 'flush() put the three written blocks in the store');
    m.send('stats');
    const stats = JSON.parse(await m.next('stats'));
    assert.match(stats, /normal_blocks_written\s+3\b/, 'stats() is the stats file text and counts the writes');
    m.send('abandon');
    assert.equal(await m.next('abandoned'), 'false', 'abandon() gives up nothing while no unmount waits on a failing store');
    m.send('unmount');
    await m.next('closed');
    const code = await Promise.race([m.exited, new Promise((r) => setTimeout(() => r('still running'), 10000))]);
    assert.equal(code, 0, 'after unmount() the process ends by itself (nothing holds its event loop)');
    assert.equal(await isMounted(dirs.mnt), false, 'unmount() took the mount down');

    m = await mountInChild({ ...options, flags: { ...options.flags, readOnly: true } });
    await m.next('ready');
    const back = await readFile(join(dirs.mnt, 'file'));
    assert.ok(back.subarray(8192, 8192 + data.length).equals(data), 'a fresh mount reads the data back');
    assert.equal(
      back.subarray(0, 8192).some((b) => b !== 0),
      false,
    );
    m.send('unmount');
    await m.next('closed');
  } finally {
    await dirs.cleanup();
  }
});

test('mount(options) refuses a missing store with a clear error and leaves nothing mounted', async () => {
  const dirs = await workdir('api-bad');
  try {
    const m = await mountInChild({
      bucket: join(dirs.root, 'missing'),
      mountpoint: dirs.mnt,
      flags: { test: true, blockSize: '4k', size: '1m' },
    });
    const line = await m.next('error');
    assert.match(line, /StoreError: test directory .*missing does not exist/);
    assert.notEqual(await m.exited, 0);
    assert.equal(await isMounted(dirs.mnt), false);
  } finally {
    await dirs.cleanup();
  }
});

test('inspectCacheFile reads a cache file a mount left behind', async () => {
  const dirs = await workdir('api-cache');
  try {
    const cacheFile = join(dirs.root, 'cache');
    const m = await mountInChild({
      bucket: dirs.store,
      mountpoint: dirs.mnt,
      flags: { test: true, blockSize: '4k', size: '1m', blockCacheFile: cacheFile, blockCacheSize: 16 },
    });
    await m.next('ready');
    await writeFile(join(dirs.mnt, 'file'), Buffer.alloc(2 * 4096, 7), { flag: 'r+' });
    m.send('unmount');
    await m.next('closed');
    const report = api.inspectCacheFile(cacheFile);
    assert.equal(report.blockSize, 4096);
    assert.equal(report.slots, 16);
    assert.deepEqual(report.blockRanges, ['0-1'], 'the two written blocks are in the file');
    assert.equal(report.dirty, 0, 'unmount uploaded them: none is dirty');
    assert.match(api.formatCacheReport(report, { blocks: true }), /0-1/);
  } finally {
    await dirs.cleanup();
  }
});
