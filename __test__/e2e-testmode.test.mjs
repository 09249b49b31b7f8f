// The whole story on --test (a local directory as the bucket): mount, ext4 on a loop device,
// files written and read back, clean unmount, remount with auto-detected sizes, e2fsck clean.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openSync, writeSync, closeSync } from 'node:fs';
import {
  spawnCli,
  whenFlagAppears,
  startMount,
  runCli,
  workdir,
  makeExt4,
  loopMount,
  run,
  isMounted,
  withTestMount,
  parseStatsFile,
} from './helpers/ours.mjs';
import { SAVE_AFTER_MS } from '../dist/cli/codeCache.js';

test('--test mode: ext4 on the file survives a remount with auto-detected geometry', { timeout: 300000 }, async () => {
  const w = await workdir('testmode');
  try {
    const file = join(w.mnt, 'file');
    let m = await startMount(['--test', '--size=32m', '--blockSize=16k', w.store, w.mnt], w.mnt);
    const st = await stat(file);
    assert.equal(st.size, 32 * 2 ** 20);
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok((await readdir(w.store)).includes('s3backer-mounted'), 'mounted flag set while mounted');

    await makeExt4(file);
    await loopMount(file, w.data);
    const payload = randomBytes(3 * 2 ** 20 + 123);
    await writeFile(join(w.data, 'random.bin'), payload);
    await writeFile(join(w.data, 'hello.txt'), 'hello from s3backer\n');
    await run('umount', [w.data]);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.equal(await isMounted(w.mnt), false);

    const names = (await readdir(w.store)).filter((n) => !n.startsWith('.'));
    assert.ok(!names.includes('s3backer-mounted'), 'flag cleared at clean unmount');
    assert.ok(names.length > 10 && names.length < 2048, `${names.length} blocks stored of 2048`);
    for (const name of names) {
      assert.match(name, /^[0-9a-f]{8}$/);
      const body = await readFile(join(w.store, name));
      assert.equal(body.length, 16384);
      assert.ok(
        body.some((b) => b !== 0),
        `stored block ${name} is not all zeros`,
      );
    }

    // No --size or --blockSize: both come from block 0.
    m = await startMount(['--test', '--listBlocks', w.store, w.mnt], w.mnt);
    assert.equal((await stat(file)).size, 32 * 2 ** 20);
    const fsck = await run('e2fsck', ['-fn', file]);
    assert.match(fsck.stdout, /clean|files/);
    await loopMount(file, w.data, { readOnly: true });
    assert.ok((await readFile(join(w.data, 'random.bin'))).equals(payload));
    assert.equal(await readFile(join(w.data, 'hello.txt'), 'utf8'), 'hello from s3backer\n');
    await run('umount', [w.data]);
    const stats = await readFile(join(w.mnt, 'stats'), 'utf8');
    assert.match(stats, /^zero_block_cache_read_hits\s+\d+$/m);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });

    // A wrong --size against the stored geometry is refused and leaves nothing behind.
    const bad = await runCli(['-f', '--test', '--size=64m', w.store, w.mnt]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--size 64m differs from the auto-detected 32m: use --force/);
    assert.equal(await isMounted(w.mnt), false);
    assert.ok(!(await readdir(w.store)).includes('s3backer-mounted'));

    // --noAutoDetect ignores block 0's geometry: the flags alone decide.
    m = await startMount(['--test', '--noAutoDetect', '--size=1m', '--blockSize=4k', w.store, w.mnt], w.mnt);
    assert.equal((await stat(file)).size, 2 ** 20);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  } finally {
    await w.cleanup();
  }
});

test(
  'mkfs.ext4 writing 1 KiB pieces into 4 KiB blocks over a slow store: after a remount every byte it wrote is there, e2fsck clean',
  { timeout: 300000 },
  async () => {
    // Each piece after the first lands while the first one's upload fetches the rest of the block;
    // a fetch that came back after the block was full once overwrote it with the store's old zeros.
    const w = await workdir('pieces');
    const flags = ['--test', '--test-delays', '--size=64m', '--blockSize=4k', '--blockCacheSize=256', '--blockCacheWriteDelay=0'];
    const file = join(w.mnt, 'file');
    try {
      for (let round = 0; round < 3; round++) {
        const store = join(w.root, `store${round}`); // empty: the fetch finds zeros, not mkfs's last run
        await mkdir(store);
        let m = await startMount([...flags, store, w.mnt], w.mnt);
        await run('mkfs.ext4', ['-q', '-F', '-b', '1024', '-E', 'nodiscard', file]);
        const head = await firstMiB(file); // the group descriptors and the resize inode's blocks
        assert.deepEqual(await m.stop(), { code: 0, signal: null });
        m = await startMount([...flags, store, w.mnt], w.mnt);
        try {
          assert.ok((await firstMiB(file)).equals(head), `round ${round}: the first MiB reads back after the remount`);
          const fsck = await run('e2fsck', ['-fn', file]).then(
            () => 0,
            (err) => `${err.code}: ${err.stdout}`,
          );
          assert.equal(fsck, 0, `round ${round}: e2fsck finds the filesystem clean`);
        } finally {
          assert.deepEqual(await m.stop(), { code: 0, signal: null });
        }
      }
    } finally {
      await w.cleanup();
    }
  },
);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function firstMiB(file) {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(2 ** 20);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    assert.equal(bytesRead, buf.length);
    return buf;
  } finally {
    await fh.close();
  }
}
async function waitFor(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('without -f: returns once mounted, serves in the background, unmounts cleanly', { timeout: 120000 }, async () => {
  const w = await workdir('daemon');
  try {
    const res = await runCli(['--test', '--size=1m', '--filename=disk.img', '--statsFilename=counters', '--fileMode=0640', w.store, w.mnt]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(await isMounted(w.mnt), true, 'mounted when the command returned');
    assert.deepEqual((await readdir(w.mnt)).sort(), ['counters', 'disk.img']);
    assert.equal((await stat(join(w.mnt, 'disk.img'))).mode & 0o777, 0o640);
    await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'disk.img')}`, 'bs=4096', 'count=2', 'conv=notrunc', 'status=none']);
    await run('umount', [w.mnt]);
    await waitFor('the flag to clear', async () => !(await readdir(w.store)).includes('s3backer-mounted'));
    assert.deepEqual((await readdir(w.store)).filter((n) => !n.startsWith('.')).sort(), ['00000000', '00000001']);

    const failed = await runCli(['--test', '--size=1m', join(w.root, 'missing'), w.mnt]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^s3backer: test directory .*missing does not exist/m);
    assert.equal(await isMounted(w.mnt), false);
  } finally {
    await w.cleanup();
  }
});

test('SIGTERM, SIGINT and SIGHUP unmount cleanly, store what was written and clear the flag', { timeout: 120000 }, async () => {
  const w = await workdir('sigterm');
  try {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
      const m = await startMount(['--test', '--size=1m', '--blockSize=4k', '--blockCacheWriteDelay=600000', w.store, w.mnt], w.mnt);
      assert.ok((await readdir(w.store)).includes('s3backer-mounted'));
      // Written by a process still holding the file open: dirty in the cache when the signal comes.
      const data = randomBytes(8192);
      const fd = openSync(join(w.mnt, 'file'), 'r+');
      writeSync(fd, data, 0, data.length, 4096);
      m.child.kill(signal);
      assert.deepEqual(await m.exited, { code: 0, signal: null }, signal);
      // The mount was detached under the open descriptor: its close may fail (ENOTCONN).
      try {
        closeSync(fd);
      } catch {}
      assert.equal(await isMounted(w.mnt), false);
      const stored = await readdir(w.store);
      assert.ok(!stored.includes('s3backer-mounted'), `${signal}: flag cleared`);
      const blocks = await Promise.all(['00000001', '00000002'].map((k) => readFile(join(w.store, k))));
      assert.ok(Buffer.concat(blocks).equals(data), `${signal}: the dirty blocks were stored`);
    }
  } finally {
    await w.cleanup();
  }
});

test(
  'a signal the moment the mounted flag is up, before the mount serves: it still unmounts cleanly and clears the flag',
  { timeout: 120000 },
  async () => {
    const w = await workdir('early-signal');
    try {
      for (const signal of ['SIGTERM', 'SIGINT', 'SIGTERM', 'SIGINT', 'SIGTERM']) {
        const { child, exited, stderr } = spawnCli(['-f', '--test', '--size=1m', '--blockSize=4k', w.store, w.mnt]);
        // Signalled as soon as the flag is there: the FUSE session is starting, or just started.
        const unwatch = whenFlagAppears(w.store, () => child.kill(signal));
        const result = await exited;
        unwatch();
        assert.deepEqual(result, { code: 0, signal: null }, `${signal}: ${stderr()}`);
        assert.equal(await isMounted(w.mnt), false, `${signal}: nothing left mounted`);
        assert.ok(!(await readdir(w.store)).includes('s3backer-mounted'), `${signal}: flag cleared`);
      }
    } finally {
      await w.cleanup();
    }
  },
);

/** Whether a process still has this mount point on its command line (a background mount's). */
const servingOn = (mnt) =>
  run('pgrep', ['-f', mnt]).then(
    () => true,
    () => false,
  );

test(
  'Ctrl-C while a background mount starts cancels it: at once before the flag, by a clean unmount after',
  { timeout: 120000 },
  async () => {
    const w = await workdir('bg-cancel');
    const serving = () => servingOn(w.mnt);
    try {
      for (const when of ['soon', 'at the flag', 'soon', 'at the flag']) {
        const log = join(w.root, 'bg.log');
        const { child: parent, exited, stderr } = spawnCli(['--test', '--size=1m', '--blockSize=4k', `--logFile=${log}`, w.store, w.mnt]);
        let unwatch = () => {};
        if (when === 'soon') setTimeout(() => parent.kill('SIGINT'), 40);
        else unwatch = whenFlagAppears(w.store, () => parent.kill('SIGINT'));
        const result = await exited;
        unwatch();
        if (when === 'at the flag') {
          assert.deepEqual(result, { code: 130, signal: null }, `${when}: ${stderr()}`);
          assert.match(stderr(), /SIGINT: mount cancelled \(the background process exited with 0\)/);
        } else {
          assert.notDeepEqual(result, { code: 0, signal: null }, `${when}: not reported as mounted`);
        }
        for (let i = 0; i < 100 && (await serving()); i++) await sleep(50);
        assert.equal(await serving(), false, `${when}: no background process left`);
        assert.equal(await isMounted(w.mnt), false, `${when}: nothing mounted`);
        assert.ok(!(await readdir(w.store)).includes('s3backer-mounted'), `${when}: no flag left`);
      }
    } finally {
      await w.cleanup();
    }
  },
);

test("a SIGINT at any moment of a background mount's first 120 ms leaves no serving process behind", { timeout: 240000 }, async () => {
  // Before the signal handlers went in ahead of the serving process's go, a signal landing just
  // after the go killed the command outright and left a serving process running, unseen: this
  // sweep met it in two of three runs. A signal between the mount being up and the command's exit
  // killed the command too (a CI run, at 112 ms) while the mount went on: it is ignored now.
  // Both starts: with --logFile the serving process is spawned once the flags are read, without it
  // it is started ahead of them (daemonPrestart.ts), every other millisecond.
  const w = await workdir('bg-sweep');
  const serving = () => servingOn(w.mnt);
  const log = `--logFile=${join(w.root, 'bg.log')}`;
  try {
    for (const [how, step] of [
      ['spawned after the flags', 1],
      ['started ahead', 2],
    ]) {
      for (let delay = 20; delay < 120; delay += step) {
        const flags = ['--test', '--size=1m', '--blockSize=4k', ...(how === 'started ahead' ? [] : [log])];
        const { child: parent, exited } = spawnCli([...flags, w.store, w.mnt]);
        setTimeout(() => parent.kill('SIGINT'), delay);
        const result = await exited;
        const when = `${how}, SIGINT after ${delay} ms (${JSON.stringify(result)})`;
        // Mounted before the signal came, or as it came (the command said so): an ordinary unmount.
        if (result.code === 0) await run('umount', [w.mnt]);
        for (let i = 0; i < 60 && (await serving()); i++) await sleep(50);
        assert.equal(await serving(), false, `${when}: no serving process left`);
        assert.equal(await isMounted(w.mnt), false, `${when}: nothing mounted`);
      }
    }
  } finally {
    await w.cleanup();
  }
});

test('restoring a disk image with dd or cp (both open with O_TRUNC) works and reads back byte for byte', { timeout: 120000 }, async () => {
  const w = await workdir('restore');
  try {
    const image = join(w.root, 'disk.img');
    await writeFile(image, randomBytes(1 << 20));
    const m = await startMount(['--test', '--blockSize=64k', '--size=1m', w.store, w.mnt], w.mnt);
    const file = join(w.mnt, 'file');
    try {
      await run('dd', [`if=${image}`, `of=${file}`, 'bs=1M', 'status=none']);
      assert.ok((await readFile(file)).equals(await readFile(image)), 'dd: the image reads back');
      await writeFile(image, randomBytes(1 << 20));
      await run('cp', [image, file]);
      assert.ok((await readFile(file)).equals(await readFile(image)), 'cp: the image reads back');
      // As upstream: truncating succeeds and changes nothing, the size is fixed.
      await run('truncate', ['-s', '0', file]);
      assert.equal((await stat(file)).size, 1 << 20);
      assert.ok((await readFile(file)).equals(await readFile(image)), 'a truncate leaves the data');
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    const again = await startMount(['--test', w.store, w.mnt], w.mnt);
    try {
      assert.ok((await readFile(file)).equals(await readFile(image)), 'stored: a fresh mount reads the image');
    } finally {
      assert.deepEqual(await again.stop(), { code: 0, signal: null });
    }
  } finally {
    await w.cleanup();
  }
});

test(
  'a mount that runs a few seconds leaves its code cache; the next start uses it and leaves it as it is',
  { timeout: 120000 },
  async () => {
    const w = await workdir('codecache');
    const env = { ...process.env, XDG_CACHE_HOME: join(w.root, 'xdg') };
    const cacheDir = join(w.root, 'xdg', 's3backer', 'code-cache');
    const files = () => readdir(cacheDir).catch(() => []);
    try {
      // In the background, as users mount: the daemon's process is the one that lives long enough.
      const res = await runCli(['--test', '--size=1m', w.store, w.mnt], { env });
      assert.equal(res.code, 0, res.stderr);
      await waitFor('the code cache', async () => (await files()).length === 1, 15000);
      await run('umount', [w.mnt]);
      await waitFor('the flag to clear', async () => !(await readdir(w.store)).includes('s3backer-mounted'));
      const [name] = await files();
      const made = (await stat(join(cacheDir, name))).mtimeMs;

      const m = await startMount(['--test', '--size=1m', w.store, w.mnt], w.mnt, { env });
      const bytes = await readFile(join(w.mnt, 'file'));
      assert.equal(bytes.length, 1 << 20);
      await sleep(SAVE_AFTER_MS + 1000);
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
      assert.deepEqual(await files(), [name]);
      assert.equal((await stat(join(cacheDir, name))).mtimeMs, made, 'a start that used the cache does not write it again');
    } finally {
      await w.cleanup();
    }
  },
);

test(
  'zeros written over part of a block the store lacks send no delete; zeros over a stored block remove it',
  { timeout: 120000 },
  async () => {
    await withTestMount('zero-parts', ['--size=8m', '--blockSize=64k'], async (w) => {
      const file = join(w.mnt, 'file');
      const stats = async () => parseStatsFile(await readFile(join(w.mnt, 'stats'), 'utf8'));
      // 4 KiB of zeros inside block 5, never written: fetched (absent), all zeros, nothing to delete.
      await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=4096', 'seek=81', 'count=1', 'conv=notrunc,fsync', 'status=none']);
      let s = await stats();
      assert.equal(s.block_cache_zero_uploads_skipped, '1');
      assert.equal(s.http_zero_blocks_written, '0', 'no delete sent');
      // Block 6 stored, then its only data zeroed: the object goes.
      await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4096', 'seek=97', 'count=1', 'conv=notrunc,fsync', 'status=none']);
      assert.ok((await readdir(w.store)).includes('00000006'));
      await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=4096', 'seek=97', 'count=1', 'conv=notrunc,fsync', 'status=none']);
      s = await stats();
      assert.equal(s.http_zero_blocks_written, '1', 'one delete, for the stored block');
      assert.ok(!(await readdir(w.store)).includes('00000006'), 'its object is gone');
      assert.ok(!(await readdir(w.store)).includes('00000005'));
    });
  },
);
