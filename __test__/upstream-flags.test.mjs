// Upstream 2.x flags that scripts and fstab lines use, each for its effect: --ipTOS on the wire,
// --noCurlCache's fresh connections, --http11 accepted, the --test backend's fault injection
// (--test-errors, --test-delays, --test-discard), and --nbd refused with one line.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server } from './helpers/s3server.mjs';
import { startMount, runCli, workdir, run, s3Flags, isMounted } from './helpers/ours.mjs';

const env = useS3Server('flags', { before, after, workdir });

/** Numeric stats now (an open reads its last getattr's snapshot: ask for attributes first). */
async function stats(mnt) {
  await run('stat', ['--cached=never', '--format=%s', join(mnt, 'stats')]);
  const text = await readFile(join(mnt, 'stats'), 'utf8');
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => /^(\S+)\s+(\S+)/.exec(l).slice(1))
      .map(([k, v]) => [k, Number.parseFloat(v)]),
  );
}

/** Captures the IP headers of packets carrying data to `port` on loopback until stop(). */
async function capture(port) {
  const child = spawn('tcpdump', ['-i', 'lo', '-n', '-v', '-l', `tcp dst port ${port} and (tcp[tcpflags] & tcp-push != 0)`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => String(d).includes('listening on') && resolve());
    child.on('exit', (code) => reject(new Error(`tcpdump exited (${code})`)));
  });
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300)); // the last packets through the pipe
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
      return [...out.matchAll(/\(tos (0x[0-9a-f]+)/g)].map((m) => m[1]);
    },
  };
}

async function writeSome(mnt, blocks = 4) {
  await run('dd', ['if=/dev/urandom', `of=${join(mnt, 'file')}`, 'bs=4k', `count=${blocks}`, 'conv=notrunc,fsync', 'status=none']);
}

test('--ipTOS sets the type of service of every packet a request sends (names and numbers, as upstream)', { timeout: 120000 }, async () => {
  for (const [flag, tos] of [
    ['--ipTOS=lowdelay', '0x10'],
    ['-oipTOS=0x28', '0x28'],
    [undefined, '0x0'],
  ]) {
    const seen = await capture(env.server.port);
    const m = await startMount(
      [...s3Flags(env.server), '--prefix=tos/', '--blockSize=4k', '--size=1m', ...(flag ? [flag] : []), 'disk', env.w.mnt],
      env.w.mnt,
    );
    try {
      await writeSome(env.w.mnt);
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    const packets = await seen.stop();
    assert.ok(packets.length >= 5, `requests were seen (${packets.length})`);
    assert.deepEqual([...new Set(packets)], [tos], `${flag ?? 'no --ipTOS'}: every request packet carries tos ${tos}`);
  }
  const bad = await runCli([...s3Flags(env.server), '--ipTOS=fastest', 'disk', env.w.mnt]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--ipTOS: "fastest" is not a number 0-255 nor one of lowdelay, throughput, reliability, lowcost, mincost/);
  assert.match((await runCli([...s3Flags(env.server), '--ipTOS=256', 'disk', env.w.mnt])).stderr, /--ipTOS: "256"/);
});

test(
  '--noCurlCache opens a connection for every request; without it they are reused; --http11 is accepted',
  { timeout: 120000 },
  async () => {
    for (const [flags, reused] of [
      [['--noCurlCache'], false],
      [['-o', 'http11'], true],
    ]) {
      const m = await startMount(
        [...s3Flags(env.server), '--prefix=conn/', '--blockSize=4k', '--size=1m', '--blockCacheThreads=1', ...flags, 'disk', env.w.mnt],
        env.w.mnt,
      );
      try {
        await writeSome(env.w.mnt, 8);
        const s = await stats(env.w.mnt);
        assert.ok(s.http_puts >= 8);
        if (reused) assert.ok(s.curl_handle_reuse_ratio > 0.5, `kept-alive connections reused: ${s.curl_handle_reuse_ratio}`);
        else assert.equal(s.curl_handle_reuse_ratio, 0, 'no connection reused');
      } finally {
        assert.deepEqual(await m.stop(), { code: 0, signal: null });
      }
    }
  },
);

test('--test-errors: one in ten block operations fails; the retries ride them out and nothing is lost', { timeout: 120000 }, async () => {
  const w = await workdir('test-errors');
  try {
    const data = randomBytes(1 << 20);
    await writeFile(join(w.root, 'image'), data);
    const m = await startMount(['--test', '--test-errors', '--initialRetryPause=5', '--blockSize=4k', '--size=1m', w.store, w.mnt], w.mnt);
    let s;
    try {
      await run('dd', [`if=${join(w.root, 'image')}`, `of=${join(w.mnt, 'file')}`, 'bs=64k', 'conv=notrunc,fsync', 'status=none']);
      s = await stats(w.mnt);
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    assert.ok(
      s.http_5xx_error > 0 && s.http_num_retries === s.http_5xx_error,
      `injected failures retried: ${s.http_5xx_error} / ${s.http_num_retries}`,
    );
    const again = await startMount(['--test', '--test-errors', '--initialRetryPause=5', w.store, w.mnt], w.mnt);
    try {
      assert.ok((await readFile(join(w.mnt, 'file'))).equals(data), 'every block stored and read back despite the errors');
    } finally {
      assert.deepEqual(await again.stop(), { code: 0, signal: null });
    }
  } finally {
    await w.cleanup();
  }
});

test('--test-delays: block operations wait up to 200 ms each', { timeout: 120000 }, async () => {
  const w = await workdir('test-delays');
  try {
    const m = await startMount(['--test', '--test-delays', '--blockCacheSync', '--blockSize=4k', '--size=1m', w.store, w.mnt], w.mnt);
    try {
      // --blockCacheSync: each of the 20 writes waits for its upload, one after the other.
      const started = Date.now();
      await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'file')}`, 'bs=4k', 'count=20', 'oflag=direct', 'conv=notrunc', 'status=none']);
      const ms = Date.now() - started;
      // 20 delays drawn from 0-200 ms add up to about 2 s; below 0.5 s would mean no delays at all.
      assert.ok(ms > 500, `20 uploads took ${ms} ms`);
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
  } finally {
    await w.cleanup();
  }
});

test('--test-discard keeps nothing: writes are dropped, blocks read as zeros, no file is touched', { timeout: 120000 }, async () => {
  const w = await workdir('test-discard');
  try {
    const m = await startMount(['--test', '--test-discard', '--blockSize=4k', '--size=1m', w.store, w.mnt], w.mnt);
    try {
      await writeSome(w.mnt, 16);
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    assert.deepEqual(await readdir(w.store), [], 'nothing in the directory, not even the mounted flag');
    const again = await startMount(['--test', '--test-discard', '--blockSize=4k', '--size=1m', w.store, w.mnt], w.mnt);
    try {
      assert.ok((await readFile(join(w.mnt, 'file'))).equals(Buffer.alloc(1 << 20)), 'all zeros');
    } finally {
      assert.deepEqual(await again.stop(), { code: 0, signal: null });
    }
    const alone = await runCli(['--test-errors', 'bucket', w.mnt]);
    assert.equal(alone.code, 1);
    assert.match(alone.stderr, /--test-errors goes with --test/);
  } finally {
    await w.cleanup();
  }
});

test('--nbd and its flags are refused with one line that says FUSE mode is what this version has', { timeout: 60000 }, async () => {
  for (const args of [['--nbd'], ['--nbd-flag=--filter=exitlast'], ['--nbd-param=x=1'], ['-o', 'nbd']]) {
    const r = await runCli([...s3Flags(env.server), ...args, 'disk', '/dev/nbd0']);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /NBD mode is not available in this version of s3backer .*; FUSE mode is/);
    assert.doesNotMatch(r.stderr, /unknown option/);
  }
  assert.equal(await isMounted('/dev/nbd0'), false);
});
