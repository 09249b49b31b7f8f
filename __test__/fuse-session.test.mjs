// The FUSE session in the native core: the kernel's request sizes, the stats file read fresh,
// fallocate's modes, the -o options that shape the two files, unmounting from outside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, open, readFile, readdir, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  startMount,
  workdir,
  withTestMount,
  run,
  runCommand,
  freePort,
  parseStatsFile,
  isMounted,
  sha256File,
  checkAfterRemount,
  CLI,
  REPO,
} from './helpers/ours.mjs';

async function metrics(port) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

/**
 * /metrics once `ready(text)` holds, or after 5 s (the caller's assertions then fail). The
 * session answers what it can by itself and tells JS afterwards, so its counts can trail the
 * request that the caller saw answered by a moment (longer on a loaded machine).
 */
async function metricsOnce(port, ready) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = await metrics(port);
    if (ready(text) || Date.now() > deadline) return text;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Requests of the histogram's series. */
function requestCount(text, operation, answeredIn) {
  const key = `s3backer_fuse_request_bytes_count{operation="${operation}",answered_in="${answeredIn}"} `;
  const line = text.split('\n').find((l) => l.startsWith(key));
  assert.ok(line, `${key}in /metrics`);
  return Number(line.slice(key.length));
}

/** Requests of the histogram's series larger than `above` bytes. */
function requestsAbove(text, operation, above, answeredIn = 'stack') {
  const bucket = (le) => {
    const key = `s3backer_fuse_request_bytes_bucket{operation="${operation}",answered_in="${answeredIn}",le="${le}"} `;
    const line = text.split('\n').find((l) => l.startsWith(key));
    assert.ok(line, `bucket le=${le} of ${operation} in /metrics`);
    return Number(line.slice(key.length));
  };
  return bucket('+Inf') - bucket(String(above));
}

test('writes and direct reads reach us as 1 MiB requests', { timeout: 120000 }, async () => {
  const w = await workdir('fuse-sizes');
  const port = await freePort();
  const m = await startMount(['--test', '--size=16m', '--blockSize=256k', `--metricsPort=${port}`, w.store, w.mnt], w.mnt);
  try {
    const file = join(w.mnt, 'file');
    const image = join(w.root, 'image');
    await writeFile(image, randomBytes(8 << 20));
    // Writes of new or cached blocks are answered in the session, the others in the stack.
    const writes = (text) => requestsAbove(text, 'write', 524288, 'stack') + requestsAbove(text, 'write', 524288, 'session');
    const before = writes(await metrics(port));
    await run('dd', [`if=${image}`, `of=${file}`, 'bs=1M', 'count=8', 'oflag=direct', 'conv=notrunc', 'status=none']);
    assert.equal(
      writes(await metricsOnce(port, (t) => writes(t) - before >= 8)) - before,
      8,
      'eight direct 1 MiB writes, each one request',
    );
    await run('dd', [`if=${image}`, `of=${file}`, 'bs=1M', 'count=8', 'conv=notrunc,fsync', 'status=none']);
    assert.ok(writes(await metricsOnce(port, (t) => writes(t) - before >= 16)) - before >= 16, 'buffered 1 MiB writes come whole too');
    // The blocks are cached: the session answers these reads itself, JS only hears of them after.
    await run('dd', [`if=${file}`, `of=${join(w.root, 'back')}`, 'bs=1M', 'count=8', 'iflag=direct', 'status=none']);
    const text = await metricsOnce(port, (t) => requestsAbove(t, 'read', 524288, 'session') >= 8);
    assert.equal(requestsAbove(text, 'read', 524288, 'session'), 8, 'direct 1 MiB reads, from the cache, in the session');
    assert.equal(requestCount(text, 'read', 'stack'), 0, 'none of them through JS');
    assert.ok((await readFile(join(w.root, 'back'))).equals(await readFile(image)));
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  // A fresh mount has nothing cached: its first read is the stack's (fetched), at 1 MiB too.
  const again = await startMount(['--test', `--metricsPort=${port}`, w.store, w.mnt], w.mnt);
  try {
    await run('dd', [`if=${join(w.mnt, 'file')}`, 'of=/dev/null', 'bs=1M', 'count=4', 'iflag=direct', 'status=none']);
    const text = await metrics(port);
    const [stack, session] = ['stack', 'session'].map((where) => requestsAbove(text, 'read', 524288, where));
    // The first is fetched; read-ahead has the next ones cached by the time they are asked for.
    assert.ok(stack >= 1, `cold reads go through the stack (${stack})`);
    assert.equal(stack + session, 4, 'each 1 MiB read one request');
  } finally {
    assert.deepEqual(await again.stop(), { code: 0, signal: null });
    await w.cleanup();
  }
});

test(
  'a mount fetches block 0 while it starts: the first read of it is answered in the session, with the stored bytes',
  { timeout: 120000 },
  async () => {
    const w = await workdir('fuse-warm');
    const port = await freePort();
    const args = ['--test', '--size=4m', '--blockSize=64k', `--metricsPort=${port}`, w.store, w.mnt];
    const head = randomBytes(4096);
    try {
      const first = await startMount(args, w.mnt);
      await writeFile(join(w.root, 'head'), head);
      await run('dd', [`if=${join(w.root, 'head')}`, `of=${join(w.mnt, 'file')}`, 'bs=4k', 'conv=notrunc,fsync', 'status=none']);
      assert.deepEqual(await first.stop(), { code: 0, signal: null });
      const m = await startMount(args, w.mnt);
      try {
        // The fetch may still be under way as the mount appears: the test waits for it (5 s at most).
        const cached = async () => parseStatsFile(await readFile(join(w.mnt, 'stats'), 'utf8'))['block_cache_current_size'];
        for (let i = 0; i < 500 && (await cached()) !== '1 blocks'; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(await cached(), '1 blocks', 'block 0 is in the cache before any read');
        const back = (
          await run('dd', [`if=${join(w.mnt, 'file')}`, 'bs=4k', 'count=1', 'iflag=direct', 'status=none'], { encoding: 'buffer' })
        ).stdout;
        assert.ok(back.equals(head), 'the stored bytes');
        const text = await metricsOnce(port, (t) => requestCount(t, 'read', 'session') >= 1);
        assert.equal(requestCount(text, 'read', 'session'), 1, 'answered in the session');
        assert.equal(requestCount(text, 'read', 'stack'), 0, 'not through JS');
      } finally {
        assert.deepEqual(await m.stop(), { code: 0, signal: null });
      }
    } finally {
      await w.cleanup();
    }
  },
);

test('the stats file is fresh on every read (direct I/O), one snapshot per open', { timeout: 120000 }, () =>
  withTestMount('fuse-stats', ['--size=1m', '--blockSize=4k', '--blockCacheSize=0'], async (w) => {
    const stats = join(w.mnt, 'stats');
    const written = async () => Number(parseStatsFile((await run('cat', [stats])).stdout)['http_normal_blocks_written'].split(' ')[0]);
    const first = await written();
    for (let i = 1; i <= 3; i++) {
      await run('dd', [
        'if=/dev/urandom',
        `of=${join(w.mnt, 'file')}`,
        'bs=4k',
        'count=1',
        `seek=${i}`,
        'conv=notrunc,fsync',
        'status=none',
      ]);
      // Read at once, with no wait for a cache to expire: the page cache never holds this file.
      assert.equal(await written(), first + i);
    }
    // Its size is the text's length, in stat and in a listing.
    const text = (await run('cat', [stats])).stdout;
    const size = (await stat(stats)).size;
    assert.ok(Math.abs(size - text.length) < 64, `stat size ${size} is about the text's ${text.length}`);
    const line = (await run('ls', ['-l', w.mnt])).stdout.split('\n').find((l) => l.endsWith(' stats'));
    assert.ok(Number(line?.split(/\s+/)[4]) > 100, `a listing shows the text's size: ${line}`);
  }),
);

test('fallocate: punch hole and zero range read back as zeros; allocation is a no-op; other modes are refused', { timeout: 120000 }, () =>
  withTestMount('fuse-falloc', ['--size=1m', '--blockSize=4k'], async (w) => {
    const file = join(w.mnt, 'file');
    const data = randomBytes(1 << 20);
    await writeFile(join(w.root, 'image'), data);
    await run('dd', [`if=${join(w.root, 'image')}`, `of=${file}`, 'bs=64k', 'conv=notrunc,fsync', 'status=none']);
    // Unaligned at both ends: the partial blocks keep their other bytes.
    await run('fallocate', ['-p', '-o', '5000', '-l', '20000', file]);
    await run('fallocate', ['-z', '-o', '100000', '-l', '9000', file]);
    await run('fallocate', ['-o', '0', '-l', '4096', file]);
    const expected = Buffer.from(data);
    expected.fill(0, 5000, 25000);
    expected.fill(0, 100000, 109000);
    assert.ok((await readFile(file)).equals(expected), 'the zeroed ranges and nothing else');
    await assert.rejects(run('fallocate', ['-c', '-o', '0', '-l', '4096', file]), /not supported/i, 'collapse range');
    await assert.rejects(run('fallocate', ['-p', '-o', String((1 << 20) - 10), '-l', '20', file]), /No space/i, 'past the end');
    assert.equal((await stat(file)).size, 1 << 20, 'the size is fixed');
  }),
);

test(
  'a discard of up to 16 whole blocks is written back as zeros (a DELETE each, done by fsync at the latest); a bigger one is trimmed in the store before it returns',
  { timeout: 120000 },
  () =>
    withTestMount('fuse-discard-back', ['--size=1m', '--blockSize=4k'], async (w) => {
      const file = join(w.mnt, 'file');
      const stats = async () =>
        Object.fromEntries(Object.entries(parseStatsFile(await readFile(join(w.mnt, 'stats'), 'utf8'))).map(([k, v]) => [k, Number(v)]));
      await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=64k', 'count=16', 'conv=notrunc,fsync', 'status=none']);
      const stored = async (n) => (await readdir(w.store)).includes(n.toString(16).padStart(8, '0'));
      for (const n of [10, 25, 40, 80]) assert.ok(await stored(n), `block ${n} stored before the discards`);
      const zerosBefore = (await stats()).http_zero_blocks_written;
      // Blocks 10-25: sixteen, written back as zeros.
      await run('fallocate', ['-p', '-o', String(10 * 4096), '-l', String(16 * 4096), file]);
      assert.ok(
        (await readFile(file)).subarray(10 * 4096, 26 * 4096).every((b) => b === 0),
        'the range reads as zeros at once',
      );
      await run('sync', ['-f', file]);
      for (let n = 10; n <= 25; n++) assert.ok(!(await stored(n)), `block ${n}'s object deleted by the fsync at the latest`);
      assert.equal((await stats()).http_zero_blocks_written - zerosBefore, 16, 'a zero upload (DELETE) of each');
      // Blocks 40-79: forty, trimmed in the store (a multi-object delete on S3) before fallocate returns.
      await run('fallocate', ['-p', '-o', String(40 * 4096), '-l', String(40 * 4096), file]);
      const after = await stats();
      assert.equal(after.http_zero_blocks_written - zerosBefore, 16, 'no zero write for these: the store deleted them as a trim');
      for (const n of [40, 79]) assert.ok(!(await stored(n)), `block ${n}'s object deleted at once`);
      assert.ok(await stored(80), 'the block after the range kept');
      assert.equal(after.discarded_blocks, 56);
    }),
);

test('-o uid=, gid= and umask= shape both files; chmod is refused', { timeout: 120000 }, () =>
  withTestMount('fuse-owner', ['--size=1m', '--blockSize=4k', '-o', 'uid=1234,gid=4321,umask=0027'], async (w) => {
    const file = await stat(join(w.mnt, 'file'));
    assert.deepEqual([file.uid, file.gid, file.mode & 0o7777], [1234, 4321, 0o750]);
    const stats = await stat(join(w.mnt, 'stats'));
    assert.deepEqual([stats.uid, stats.gid, stats.mode & 0o7777], [1234, 4321, 0o440]);
    await assert.rejects(run('chmod', ['0666', join(w.mnt, 'file')]), /not permitted/);
  }),
);

test('umount from outside ends the process after storing everything; the mount table shows the store', { timeout: 120000 }, async () => {
  const w = await workdir('fuse-umount');
  const m = await startMount(['--test', '--size=1m', '--blockSize=4k', '--blockCacheWriteDelay=600000', w.store, w.mnt], w.mnt);
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  assert.ok(
    mounts.split('\n').some((l) => l.startsWith(`${w.store} ${w.mnt} fuse.s3backer `)),
    "fsname is the store, type fuse.s3backer, as upstream's",
  );
  const data = randomBytes(4096);
  await writeFile(join(w.root, 'block'), data);
  await run('dd', [`if=${join(w.root, 'block')}`, `of=${join(w.mnt, 'file')}`, 'bs=4k', 'seek=3', 'conv=notrunc', 'status=none']);
  await run('umount', [w.mnt]);
  assert.deepEqual(await m.exited, { code: 0, signal: null });
  assert.equal(await isMounted(w.mnt), false);
  assert.ok((await readFile(join(w.store, '00000003'))).equals(data), 'the dirty block was stored before the exit');
  await w.cleanup();
});

test(
  'as a user other than root: mounted through fusermount3 where /dev/fuse allows it, else one clear line and no flag',
  { timeout: 120000 },
  async (t) => {
    const asNobody = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
    const readable = async (file) => (await runCommand('setpriv', [...asNobody, 'test', '-r', file])).code === 0;
    // A checkout that is a private directory (mktemp -d), or inside one, is out of another user's
    // reach: the user gets its entries bind-mounted, one by one, into a directory it can traverse
    // (the checkout's own root keeps its mode even when bind-mounted whole).
    let cli = CLI;
    let bound;
    const mounted = [];
    if (!(await readable(cli))) {
      bound = await mkdtemp(join(tmpdir(), 's3b-checkout-'));
      await chmod(bound, 0o755);
      for (const entry of await readdir(REPO, { withFileTypes: true })) {
        if (entry.name === '.git' || !(entry.isDirectory() || entry.isFile())) continue;
        const target = join(bound, entry.name);
        if (entry.isDirectory()) await mkdir(target);
        else await writeFile(target, '');
        await run('mount', ['--bind', join(REPO, entry.name), target]);
        mounted.push(target);
      }
      cli = join(bound, 'dist', 'cli', 'main.js');
    }
    // Node itself may be inside the checkout too (setup.sh's .cache/node): reached the same way.
    const node = bound && process.execPath.startsWith(`${REPO}/`) ? join(bound, relative(REPO, process.execPath)) : process.execPath;
    const w = await workdir('fuse-user');
    try {
      if (!(await readable(cli))) return t.skip(`user nobody cannot read ${cli}`);
      if (!(await readable(node))) return t.skip(`user nobody cannot run ${node}`);
      await run('chown', ['-R', 'nobody', w.root]);
      const usable = (await runCommand('setpriv', [...asNobody, 'sh', '-c', 'test -r /dev/fuse && test -w /dev/fuse'])).code === 0;
      const args = ['-f', '--test', '--size=1m', '--blockSize=4k', w.store, w.mnt];
      if (!usable) {
        const r = await runCommand('setpriv', [...asNobody, 'env', `HOME=${w.root}`, node, cli, ...args]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /cannot mount FUSE at .*\/dev\/fuse cannot be opened by this user/);
        assert.ok(!(await readdir(w.store)).includes('s3backer-mounted'), 'the mounted flag was taken down again');
        assert.equal(await isMounted(w.mnt), false);
        return;
      }
      const m = await startMount(args.slice(1), w.mnt, { command: ['setpriv', ...asNobody, node, cli] });
      await run('setpriv', [
        ...asNobody,
        'dd',
        'if=/dev/urandom',
        `of=${join(w.mnt, 'file')}`,
        'bs=4k',
        'count=1',
        'conv=notrunc',
        'status=none',
      ]);
      await run('setpriv', [...asNobody, 'fusermount3', '-u', w.mnt]);
      assert.deepEqual(await m.exited, { code: 0, signal: null });
      assert.ok((await readdir(w.store)).includes('00000000'));
    } finally {
      await w.cleanup();
      // Never recursive: a mount left over would make that a deletion of the checkout itself.
      for (const target of mounted) {
        await run('umount', [target]).catch(() => run('umount', ['-l', target]));
        await ((await stat(target)).isDirectory() ? rmdir(target) : unlink(target));
      }
      if (bound) await rmdir(bound);
    }
  },
);

test('reads answered in the session while a tiny cache evicts and refills its slots never return another block', { timeout: 180000 }, () =>
  // 4 slots for a 2 MiB region of 32 blocks: every read or write of an uncached block evicts one.
  withTestMount('fuse-churn', ['--size=4m', '--blockSize=64k', '--blockCacheSize=4', '--blockCacheWriteDelay=0'], async (w) => {
    const file = join(w.mnt, 'file');
    const job = (name, extra) => [`--name=${name}`, `--filename=${file}`, '--bs=64k', '--direct=1', '--ioengine=psync', ...extra];
    const r = await run(
      'fio',
      [
        '--output-format=json',
        // Writes 64 KiB blocks at random and, every 8 writes, reads 8 written ones back checking
        // each one's checksum and its offset header (a slot read as the wrong block fails it).
        ...job('verify', [
          '--rw=randwrite',
          '--size=2m',
          '--verify=crc32c',
          '--verify_backlog=8',
          '--verify_fatal=1',
          '--verify_state_save=0',
          '--loops=20',
        ]),
        // Meanwhile another reader pulls blocks of the other half in, so slots keep being reused.
        ...job('churn', ['--rw=randread', '--offset=2m', '--size=2m', '--runtime=15', '--time_based']),
      ],
      { maxBuffer: 1 << 24 },
    );
    const jobs = JSON.parse(r.stdout).jobs;
    assert.deepEqual(
      jobs.map((j) => j.error),
      [0, 0],
    );
    assert.ok(jobs[0].read.io_bytes >= 2 << 20, `verify read back ${jobs[0].read.io_bytes} bytes`);
  }),
);

test('writes of new and cached blocks are answered in the session; fsync and unmount store them', { timeout: 120000 }, async () => {
  const w = await workdir('fuse-writes');
  const port = await freePort();
  const stored = async () => (await readdir(w.store)).filter((n) => /^[0-9a-f]{8}$/.test(n));
  // A write delay of ten minutes: only an fsync, a close or the unmount stores the last block.
  const m = await startMount(
    ['--test', '--size=8m', '--blockSize=64k', '--blockCacheWriteDelay=600000', `--metricsPort=${port}`, w.store, w.mnt],
    w.mnt,
  );
  const file = join(w.mnt, 'file');
  const data = randomBytes(2 << 20);
  try {
    // Through an open descriptor (FUSE writes through, without a writeback cache): no close flushes in between.
    const fh = await open(file, 'r+');
    try {
      await fh.write(data, 0, data.length, 0);
      let text = await metricsOnce(port, (t) => requestCount(t, 'write', 'session') >= 2);
      assert.ok(requestCount(text, 'write', 'session') >= 2, 'writes of new blocks, in the session');
      assert.equal(requestCount(text, 'write', 'stack'), 0, 'none through JS');
      // Blocks a sequential writer moved past upload at once; the last one waits.
      assert.ok(!(await stored()).includes('0000001f'), 'the last block is not stored before an fsync');
      await fh.sync();
      assert.equal((await stored()).length, 32, 'fsync stored every block the session took');
      assert.ok((await readFile(join(w.store, '0000001f'))).equals(data.subarray(31 << 16)), 'block 31 as written');
      // Part of a cached block, unaligned: the session's too; the rest of the block is kept.
      const patch = randomBytes(4096);
      const before = requestCount(text, 'write', 'session');
      await fh.write(patch, 0, patch.length, 70000);
      text = await metricsOnce(port, (t) => requestCount(t, 'write', 'session') > before);
      assert.equal(requestCount(text, 'write', 'session'), before + 1);
      assert.equal(requestCount(text, 'write', 'stack'), 0);
      patch.copy(data, 70000);
    } finally {
      await fh.close();
    }
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  try {
    // The patched block was stored by then: a fresh mount, with nothing cached, reads it all back.
    assert.ok((await readFile(join(w.store, '00000001'))).equals(data.subarray(1 << 16, 2 << 16)));
    const again = await startMount(['--test', w.store, w.mnt], w.mnt);
    try {
      assert.ok((await readFile(file)).subarray(0, 2 << 20).equals(data));
    } finally {
      assert.deepEqual(await again.stop(), { code: 0, signal: null });
    }
  } finally {
    await w.cleanup();
  }
});

test(
  'a loop device with --direct-io=on: asynchronous direct writes in flight together land whole; ext4 on it is clean and reads back after a remount',
  { timeout: 180000 },
  async () => {
    const w = await workdir('fuse-loop-dio');
    const flags = ['--test', '--size=64m', '--blockSize=64k', w.store, w.mnt];
    const file = join(w.mnt, 'file');
    const m = await startMount(flags, w.mnt);
    let device;
    const detach = async () => {
      if (device) await run('losetup', ['-d', device]);
      device = undefined;
    };
    let sum;
    try {
      // Sixteen direct writes in flight (the kernel sends them in parallel: async direct I/O),
      // 12 KiB each, so most cover parts of blocks the stack must fetch first; every one verified.
      const r = await run('fio', [
        '--name=aio',
        `--filename=${file}`,
        '--rw=randwrite',
        '--bs=12k',
        '--size=15m',
        '--direct=1',
        '--ioengine=libaio',
        '--iodepth=16',
        '--verify=crc32c',
        '--verify_fatal=1',
        '--output-format=json',
      ]);
      const job = JSON.parse(r.stdout).jobs[0];
      assert.equal(job.error, 0);
      assert.equal(job.write.io_bytes, 15 << 20, 'every write done');
      assert.ok(job.read.io_bytes >= 15 << 20, `and verified (${job.read.io_bytes} bytes read back)`);
      await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', file]);
      device = (await run('losetup', ['--find', '--show', '--direct-io=on', file])).stdout.trim();
      const dio = await readFile(`/sys/block/${device.replace('/dev/', '')}/loop/dio`, 'utf8');
      assert.equal(dio.trim(), '1', 'the loop device does direct I/O on the FUSE file');
      await run('mount', [device, w.data]);
      await run('dd', ['if=/dev/urandom', `of=${join(w.data, 'big')}`, 'bs=1M', 'count=24', 'conv=fsync', 'status=none']);
      sum = await sha256File(join(w.data, 'big'));
      await run('umount', [w.data]);
      await detach();
    } finally {
      await run('umount', [w.data]).catch(() => {});
      await detach().catch(() => {});
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    await checkAfterRemount(w, flags, 'big', sum);
  },
);
