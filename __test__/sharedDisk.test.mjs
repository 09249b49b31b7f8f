// --sharedDiskMode, upstream's mode for a disk several hosts mount at once under a cluster
// filesystem: no block cache, no zero cache, no MD5 cache, direct I/O, no --listBlocks; the
// shared token 0x7fffffff on the flag lets shared mounts in, keeps normal ones out, and stays
// after unmount. On moto (conditional writes), and beside upstream's newest build.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MOTO_SKIP, motoDiskFlags, useMotoBehindProxy } from './helpers/moto.mjs';
import { getObject } from './helpers/s3server.mjs';
import { isMounted, parseStatsFile, runCli, startMount } from './helpers/ours.mjs';
import { NEWEST_UPSTREAM_BIN, NEWEST_UPSTREAM_SKIP, startUpstream } from './helpers/upstream.mjs';

const require = createRequire(import.meta.url);
const { buildConfig, SHARED_DISK_REFUSED } = require('../dist/config/config.js');
const { ConfigError } = require('../dist/errors.js');
const { FLAG_BY_NAME } = require('../dist/config/flags.js');

const BS = 4096;
const env = useMotoBehindProxy('shared', { before, after });

const via = (endpoint, prefix) => [...motoDiskFlags(endpoint, prefix), `--blockSize=${BS}`];
const flagOf = (prefix) => getObject(env.server, 'disk', `${prefix}s3backer-mounted`);
const configOf = (flags) => buildConfig({ flags, positionals: ['bucket', '/mnt'], foreground: true, debug: false, fuseOptions: [] });

async function readAt(fh, block) {
  const buf = Buffer.alloc(BS);
  await fh.read(buf, 0, BS, block * BS);
  return buf;
}

async function withFile(file, fn) {
  const fh = await open(file, 'r+');
  try {
    return await fn(fh);
  } finally {
    await fh.close();
  }
}

/**
 * A block read as zeros through `reader` (so any cache there, the kernel's pages included, would
 * hold zeros), then written through `writer`: the reader's same open file sees the new data.
 */
async function seenAcross(writer, reader, block, data = randomBytes(BS)) {
  await withFile(reader, async (r) => {
    assert.ok((await readAt(r, block)).equals(Buffer.alloc(BS)), 'zeros first');
    await withFile(writer, (w) => w.write(data, 0, BS, block * BS));
    assert.ok((await readAt(r, block)).equals(data), `block ${block} written through one mount reads back through the other`);
  });
}

test("--sharedDiskMode turns every cache off, direct I/O on, and refuses upstream's list of caching flags", async () => {
  const c = configOf({ sharedDiskMode: true });
  assert.equal(c.sharedDiskMode, true);
  assert.equal(c.blockCache.size, 0);
  assert.equal(c.directIO, true);
  assert.equal(c.listBlocks, false);
  assert.equal(c.ecProtect, undefined);
  assert.equal(SHARED_DISK_REFUSED.length, 18);
  for (const name of SHARED_DISK_REFUSED) {
    assert.throws(
      () => configOf({ sharedDiskMode: true, [name]: FLAG_BY_NAME.get(name).kind === 'boolean' ? true : '1' }),
      (err) => err instanceof ConfigError && err.message === `--${name} cannot be used with --sharedDiskMode, which turns every cache off`,
    );
  }
  // The command line, both forms: one line, exit 1, before anything is contacted.
  for (const args of [
    ['--sharedDiskMode', '--readAhead=0'],
    ['-o', 'sharedDiskMode,blockCacheSize=0'],
  ]) {
    const res = await runCli(['-f', ...args, '--baseURL=http://127.0.0.1:9/', 'bucket', env.w1.mnt]);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /^s3backer: --(readAhead|blockCacheSize) cannot be used with --sharedDiskMode, which turns every cache off\n$/,
    );
  }
});

test(
  "two shared mounts started together both mount; each sees the other's writes at once; the flag stays",
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'shared/';
    const args = [...via(env.proxy.endpoint, prefix), '-o', 'sharedDiskMode', 'disk'];
    env.proxy.clear();
    const [a, b] = await Promise.all([startMount([...args, env.w1.mnt], env.w1.mnt), startMount([...args, env.w2.mnt], env.w2.mnt)]);
    const fa = join(env.w1.mnt, 'file');
    const fb = join(env.w2.mnt, 'file');
    // Created once, with If-None-Match: a later one finds the shared token and writes nothing.
    const puts = env.proxy.requests.filter((r) => r.method === 'PUT' && r.key === `${prefix}s3backer-mounted`);
    assert.ok(puts.length >= 1 && puts.every((r) => r.headers['if-none-match'] === '*'), JSON.stringify(puts.map((r) => r.headers)));
    assert.equal(puts.filter((r) => r.status === 200).length, 1);
    assert.equal((await flagOf(prefix)).metadata['s3backer-mount-token'], '7fffffff');

    try {
      await seenAcross(fa, fb, 5);
      await seenAcross(fb, fa, 9);
      // Rewritten, then zeroed (its object deleted) through one mount: the other's open file sees both.
      await withFile(fb, async (r) => {
        const again = randomBytes(BS);
        await withFile(fa, (w) => w.write(again, 0, BS, 5 * BS));
        assert.ok((await readAt(r, 5)).equals(again));
        await withFile(fa, (w) => w.write(Buffer.alloc(BS), 0, BS, 5 * BS));
        assert.ok((await readAt(r, 5)).equals(Buffer.alloc(BS)));
      });
      assert.equal(await getObject(env.server, 'disk', `${prefix}00000005`), null, 'a zero block is deleted');
      const stats = parseStatsFile(await readFile(join(env.w1.mnt, 'stats'), 'utf8'));
      assert.equal(stats.block_cache_current_size, undefined, 'no block cache');
      assert.equal(stats.zero_block_cache_size, undefined, 'no zero cache');
    } finally {
      assert.deepEqual(await a.stop(), { code: 0, signal: null });
      assert.deepEqual(await b.stop(), { code: 0, signal: null });
    }
    assert.equal((await flagOf(prefix)).metadata['s3backer-mount-token'], '7fffffff', 'left set at unmount, as upstream');
  },
);

test(
  'a shared bucket refuses a normal mount unless --force; a normally mounted one refuses a shared mount',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'mixed/';
    const args = [...via(env.proxy.endpoint, prefix), 'disk'];
    const shared = await startMount(['--sharedDiskMode', ...args, env.w1.mnt], env.w1.mnt);
    // (stopped at once: the flag stays behind it)
    assert.deepEqual(await shared.stop(), { code: 0, signal: null });
    for (const extra of [[], ['--readOnly']]) {
      const refused = await runCli(['-f', ...extra, ...args, env.w2.mnt]);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr.trim().split('\n').at(-1),
        /^s3backer: s3:\/\/disk\/mixed\/ appears to be configured for shared disk mode \(flag mixed\/s3backer-mounted carries the shared token\): mount it with --sharedDiskMode, or use --force or --reset-mounted-flag$/,
      );
      assert.equal(await isMounted(env.w2.mnt), false);
    }
    const forced = await startMount(['--force', ...args, env.w2.mnt], env.w2.mnt);
    assert.match(forced.stderr(), /warn: the mounted flag is set for shared disk mode; mounting anyway because of --force/);
    assert.match((await flagOf(prefix)).metadata['s3backer-mount-token'], /^(?!7fffffff)[0-9a-f]{8}$/);
    // Now normally mounted: a shared mount is refused as any second mount is.
    const refused = await runCli(['-f', '--sharedDiskMode', ...args, env.w1.mnt]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /appears to be mounted already \(flag mixed\/s3backer-mounted is set by host /);
    assert.deepEqual(await forced.stop(), { code: 0, signal: null });
    assert.equal(await flagOf(prefix), null, 'the normal mount took the flag over and cleared it');
  },
);

test(
  "beside upstream's newest build: its shared mount and ours share one bucket, each reading the other's writes",
  { skip: MOTO_SKIP || NEWEST_UPSTREAM_SKIP, timeout: 90000 },
  async () => {
    const prefix = 'interop/';
    const up = startUpstream(env.server, `disk/${prefix.slice(0, -1)}`, env.w1.mnt, ['--sharedDiskMode', '--size=1m', '--blockSize=4k'], {
      bin: NEWEST_UPSTREAM_BIN,
    });
    await up.ready;
    try {
      // Upstream made the flag; ours joins without writing it.
      assert.equal((await flagOf(prefix)).metadata['s3backer-mount-token'], '7fffffff');
      const ours = await startMount(['--sharedDiskMode', ...via(env.server.endpoint, prefix), 'disk', env.w2.mnt], env.w2.mnt);
      try {
        const fu = join(env.w1.mnt, 'file');
        const fo = join(env.w2.mnt, 'file');
        await seenAcross(fo, fu, 3);
        await seenAcross(fu, fo, 7);
      } finally {
        assert.deepEqual(await ours.stop(), { code: 0, signal: null });
      }
    } finally {
      assert.equal((await up.stop()).code, 0, up.output());
    }
    assert.equal((await flagOf(prefix)).metadata['s3backer-mount-token'], '7fffffff');
    // And upstream's shared flag keeps our normal mount out, as upstream's would.
    const refused = await runCli(['-f', ...via(env.server.endpoint, prefix), 'disk', env.w2.mnt]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /appears to be configured for shared disk mode/);
  },
);
