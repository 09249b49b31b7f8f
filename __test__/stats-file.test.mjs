// The statistics file as upstream writes it: the same lines in the same order with the same units
// (compared with upstream's newest build on the same workload), ours after them; removing it
// resets the counters; --statsFileMirror keeps a copy in a regular file.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server } from './helpers/s3server.mjs';
import { NEWEST_UPSTREAM_BIN, NEWEST_UPSTREAM_SKIP, startUpstream, stopUpstream } from './helpers/upstream.mjs';
import { startMount, workdir, run, s3Flags } from './helpers/ours.mjs';

const env = useS3Server('stats', { before, after, workdir });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** [name, value] pairs in file order (a name longer than the 28 columns pushes its value right). */
const lines = (text) =>
  text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => /^(\S+)\s+(.*)$/.exec(l).slice(1));
/** The form of a value: digits replaced, so "0.011 sec" and "1.234 sec" match. */
const form = (value) => value.replace(/\d+/g, 'N');

/** Some writes, reads and a zero block, the same for both programs. */
async function workload(mnt) {
  const file = join(mnt, 'file');
  await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=64k', 'count=4', 'conv=notrunc,fsync', 'status=none']);
  await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=64k', 'seek=1', 'count=1', 'conv=notrunc,fsync', 'status=none']);
  await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=64k', 'count=8', 'iflag=direct', 'status=none']);
  return readFile(join(mnt, 'stats'), 'utf8');
}

// Upstream's newest has a second zero cache below its block cache; ours has one zero cache.
const NOT_OURS = ['lower_zero_block_cache_size', 'lower_zero_block_cache_read_hits', 'lower_zero_block_cache_write_hits'];

test("the stats file's lines: upstream's names, order and units, then ours", { skip: NEWEST_UPSTREAM_SKIP, timeout: 120000 }, async () => {
  const flags = ['--blockSize=64k', '--size=2m', '--listBlocks', '--md5CacheSize=10', '--md5CacheTime=10000', '--minWriteDelay=0'];
  const up = startUpstream(env.server, 'disk', env.w.mnt, ['--prefix=up/', ...flags], { bin: NEWEST_UPSTREAM_BIN });
  await up.ready;
  const theirs = lines(await workload(env.w.mnt));
  assert.equal((await stopUpstream(up)).code, 0, up.output());
  const m = await startMount([...s3Flags(env.server), '--prefix=ours/', ...flags, 'disk', env.w.mnt], env.w.mnt);
  let mine;
  try {
    mine = lines(await workload(env.w.mnt));
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  const expected = theirs.filter(([name]) => !NOT_OURS.includes(name));
  assert.deepEqual(
    mine.slice(0, expected.length).map(([name]) => name),
    expected.map(([name]) => name),
    "upstream's lines first, in its order",
  );
  for (const [i, [name, value]] of expected.entries()) assert.equal(form(mine[i][1]), form(value), `the unit of ${name}`);
  const ours = mine.slice(expected.length).map(([name]) => name);
  assert.ok(ours.length > 0 && ours.every((name) => !theirs.some(([n]) => n === name)), `then ours: ${ours.join(', ')}`);
  const value = (name) => Number.parseFloat(mine.find(([n]) => n === name)[1]);
  assert.ok(value('http_puts') >= 3 && value('block_cache_write_misses') >= 3, 'the counters count');
});

const valueOf = (text, name) => Number.parseFloat(lines(text).find(([n]) => n === name)?.[1] ?? 'NaN');

/** The stats file now: an open reads what its last getattr rendered, so ask for attributes first. */
async function statsNow(mnt) {
  await run('stat', ['--cached=never', '--format=%s', join(mnt, 'stats')]);
  return readFile(join(mnt, 'stats'), 'utf8');
}

test('removing the stats file resets the counters, as upstream', { timeout: 60000 }, async () => {
  const m = await startMount([...s3Flags(env.server), '--prefix=reset/', '--blockSize=64k', '--size=1m', 'disk', env.w.mnt], env.w.mnt);
  try {
    const stats = join(env.w.mnt, 'stats');
    await workload(env.w.mnt);
    const before = await statsNow(env.w.mnt);
    assert.ok(valueOf(before, 'http_puts') >= 3);
    await rm(stats);
    const after = await statsNow(env.w.mnt);
    assert.equal(valueOf(after, 'http_puts'), 0, 'counted from zero again');
    assert.equal(valueOf(after, 'block_cache_write_misses'), 0);
    const size = valueOf(before, 'block_cache_current_size');
    assert.ok(size > 0 && valueOf(after, 'block_cache_current_size') === size, 'sizes are states, not counters: kept');
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});

test(
  '--statsFileMirror: a copy replaced atomically every interval; removing it resets the counters; the last copy at unmount',
  { timeout: 60000 },
  async () => {
    const mirror = join(env.w.root, 'mirror.prom');
    const m = await startMount(
      [
        ...s3Flags(env.server),
        '--prefix=mirror/',
        '--blockSize=64k',
        '--size=1m',
        '-o',
        `statsFileMirror=${mirror},statsFileMirrorInterval=100`,
        'disk',
        env.w.mnt,
      ],
      env.w.mnt,
    );
    let puts;
    try {
      for (let i = 0; i < 50 && !(await stat(mirror).catch(() => undefined)); i++) await sleep(50);
      const first = await readFile(mirror, 'utf8');
      assert.deepEqual(
        lines(first).map(([n]) => n),
        lines(await readFile(join(env.w.mnt, 'stats'), 'utf8')).map(([n]) => n),
        'the stats file, line for line',
      );
      await workload(env.w.mnt);
      // Updated within a few intervals; never seen half written (each read parses whole).
      let seen = 0;
      for (let i = 0; i < 40 && !(seen >= 3); i++) {
        const text = await readFile(mirror, 'utf8');
        assert.equal(lines(text).length, lines(first).length, 'each version whole');
        seen = valueOf(text, 'http_puts');
        await sleep(50);
      }
      assert.ok(seen >= 3, `the mirror caught up with the writes (http_puts ${seen})`);
      await rm(mirror);
      let reset = NaN;
      for (let i = 0; i < 40 && !(reset === 0); i++) {
        await sleep(50);
        reset = valueOf(await readFile(mirror, 'utf8').catch(() => ''), 'http_puts');
      }
      assert.equal(reset, 0, 'rewritten with the counters reset');
      assert.equal(valueOf(await statsNow(env.w.mnt), 'http_puts'), 0, 'the stats file too');
      await run('dd', [
        'if=/dev/urandom',
        `of=${join(env.w.mnt, 'file')}`,
        'bs=64k',
        'count=2',
        'seek=8',
        'conv=notrunc,fsync',
        'status=none',
      ]);
      puts = valueOf(await statsNow(env.w.mnt), 'http_puts');
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    assert.ok(puts >= 2);
    assert.ok(valueOf(await readFile(mirror, 'utf8'), 'http_puts') >= puts, 'the copy left at unmount has the final counts');
    assert.equal(await stat(`${mirror}.new`).catch(() => 'gone'), 'gone', 'no temporary file left');
  },
);
