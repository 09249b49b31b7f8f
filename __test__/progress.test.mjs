// Progress output: redrawn in place on a terminal, absent from pipes and logs and with --quiet.
// The reporter is tested with a fake terminal and clock; the CLI under a real pseudo-terminal
// (util-linux script) for --erase, --listBlocks and cache-file recovery at mount.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createProgress, formatDuration, writeAboveProgress } from '../dist/util/progress.js';
import { createLogger } from '../dist/util/log.js';
import { CLI, runCli, startMount, workdir, run } from './helpers/ours.mjs';
import { statsNow, waitForLog } from './helpers/listing.mjs';

function fakeStream(isTTY = true) {
  const writes = [];
  return { isTTY, writes, write: (text) => writes.push(text) };
}

function fakeClock(start = 1000) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

test('redraws are throttled and each redraws the same line', () => {
  const s = fakeStream();
  const c = fakeClock();
  const p = createProgress('things', 100, { stream: s, now: c.now, intervalMs: 250 });
  for (let i = 1; i <= 15; i++) {
    c.t += 50; // 15 updates over 750 ms: drawn at 250, 500 and 750 ms only
    p.update(i);
  }
  assert.deepEqual(
    s.writes.map((w) => w.match(/: (\d+)\//)[1]),
    ['5', '10', '15'],
    s.writes.join('|'),
  );
  for (const w of s.writes) {
    assert.ok(w.startsWith('\rthings: '), JSON.stringify(w));
    assert.ok(w.endsWith('\x1b[K'), 'clears what a longer line left');
    assert.ok(!w.includes('\n'), 'redraws never end the line');
  }
});

test('rate, percentage and ETA come from the injected clock', () => {
  const s = fakeStream();
  const c = fakeClock();
  const p = createProgress('blocks deleted', 2000, { stream: s, now: c.now });
  c.t += 1000;
  p.update(500);
  assert.equal(s.writes.at(-1), '\rblocks deleted: 500/2000 (25%), 500/s, ETA 3 s\x1b[K');
  c.t += 99_000; // 100 s for 1000: 10/s, 1000 left
  p.update(1000);
  assert.equal(s.writes.at(-1), '\rblocks deleted: 1000/2000 (50%), 10/s, ETA 1m40s\x1b[K');
  c.t += 1;
  p.update(1001);
  assert.equal(s.writes.length, 2, 'throttled');
});

test('without a total: a count and a rate, no percentage or ETA', () => {
  const s = fakeStream();
  const c = fakeClock();
  const p = createProgress('found', undefined, { stream: s, now: c.now });
  p.update(3);
  assert.deepEqual(s.writes, [], 'nothing drawn at once: a quick run shows only its final line');
  c.t += 500;
  p.update(4);
  assert.equal(s.writes.at(-1), '\rfound: 4\x1b[K', 'no rate over less than a second: it would swing wildly');
  c.t += 1500;
  p.update(9);
  assert.equal(s.writes.at(-1), '\rfound: 9, 4.5/s\x1b[K');
});

test('the final line shows the last count, the time and the rate, and ends the line', () => {
  const s = fakeStream();
  const c = fakeClock();
  const p = createProgress('verified', undefined, { stream: s, now: c.now });
  p.update(0, 40); // the total learned late
  c.t += 100;
  p.update(39); // throttled: not drawn
  c.t += 1900;
  p.update(40);
  p.finish();
  assert.equal(s.writes.at(-1), '\rverified: 40/40 in 2.0 s, 20/s\x1b[K\n');
  assert.equal(s.writes.length, 2, 'one redraw, then the final line');
  c.t += 5000;
  p.update(41);
  p.finish();
  assert.equal(s.writes.length, 2, 'nothing after the final line (stragglers of a failed run)');

  const quick = fakeStream();
  const q = createProgress('quick', 5, { stream: quick, now: c.now });
  q.update(5);
  c.t += 300;
  q.finish();
  assert.deepEqual(quick.writes, ['\rquick: 5/5 in 0.3 s\x1b[K\n'], 'a quick run: only the final line, no rate');
});

test('finish without any reported work prints nothing', () => {
  const s = fakeStream();
  createProgress('idle', 10, { stream: s }).finish();
  assert.deepEqual(s.writes, []);
});

test('nothing at all when the stream is not a terminal, or with quiet', () => {
  for (const [s, quiet] of [
    [fakeStream(false), false],
    [{ ...fakeStream(), isTTY: undefined }, false],
    [fakeStream(true), true],
  ]) {
    const c = fakeClock();
    const p = createProgress('x', 10, { stream: s, now: c.now, quiet });
    for (let i = 1; i <= 10; i++) {
      c.t += 1000;
      p.update(i);
    }
    p.finish();
    assert.deepEqual(s.writes, [], `isTTY ${s.isTTY}, quiet ${quiet}`);
  }
});

test('a log line written while progress is drawn goes above it, and the progress line is drawn again', () => {
  const s = fakeStream();
  const c = fakeClock();
  const p = createProgress('blocks deleted', 10, { stream: s, now: c.now });
  const log = createLogger({ debug: false, quiet: false, write: (line) => writeAboveProgress(s, line) });
  c.t += 300;
  p.update(3);
  const drawn = s.writes.at(-1);
  log.warn('a warning');
  assert.equal(s.writes.at(-1), `\r\x1b[Ks3backer: warn: a warning\n${drawn}`, 'cleared, the line, then the progress again');
  // Another stream (a pipe, a log file) has no progress line to clear.
  const other = fakeStream(false);
  writeAboveProgress(other, 'plain\n');
  assert.deepEqual(other.writes, ['plain\n']);
  p.finish();
  log.warn('after');
  assert.equal(s.writes.at(-1), 's3backer: warn: after\n', 'once the progress line has ended, lines are written as they are');
});

test('durations read naturally', () => {
  assert.equal(formatDuration(0.4), '0 s');
  assert.equal(formatDuration(59), '59 s');
  assert.equal(formatDuration(125), '2m05s');
  assert.equal(formatDuration(3725), '1h02m');
});

// --- the CLI under a pseudo-terminal -----------------------------------------------------------

const quote = (a) => `'${a.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the CLI with a terminal as stdin/stdout/stderr (script -qfec). With `mountpoint`, waits
 * for the mount (and then for `ready(output)`, if given), unmounts it, and resolves once the CLI
 * has exited.
 */
function runOnTerminal(args, { mountpoint, ready = async () => true } = {}) {
  return new Promise((resolve, reject) => {
    const cmd = [process.execPath, CLI, ...args].map(quote).join(' ');
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    let exited = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no exit; output: ${output}`));
    }, 120000);
    child.on('exit', (code) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code, output });
    });
    if (mountpoint) {
      (async () => {
        const mounted = () =>
          stat(join(mountpoint, 'file')).then(
            () => true,
            () => false,
          );
        while (!exited && !((await mounted()) && (await ready(output)))) {
          await new Promise((r) => setTimeout(r, 50));
        }
        if (!exited) await run('umount', [mountpoint]);
      })().catch(reject);
    }
  });
}

/** Writes `count` non-zero blocks straight into a --test store (one file per block). */
async function fillStore(dir, count, blockSize) {
  const body = Buffer.alloc(blockSize, 7);
  for (let i = 0; i < count; i += 200) {
    const batch = [];
    for (let n = i; n < Math.min(count, i + 200); n++) batch.push(writeFile(join(dir, n.toString(16).padStart(8, '0')), body));
    await Promise.all(batch);
  }
}

test('script(1) is there to give the CLI a terminal', async () => {
  const { stdout } = await run('script', ['--version']);
  assert.match(stdout, /util-linux/);
});

test('--erase shows progress on a terminal only, and not with --quiet', { timeout: 300000 }, async () => {
  const w = await workdir('progress-erase');
  try {
    const args = ['--test', '--erase', '--force', w.store];
    await fillStore(w.store, 1500, 512);
    const tty = await runOnTerminal(args);
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, /\rblocks listed: 1500 in \d+\.\d s/);
    assert.match(tty.output, /\rblocks deleted: 1500\/1500 in \d+\.\d s(, [\d.]+\/s)?\x1b\[K\r?\n/);
    assert.match(tty.output, /erased 1500 blocks/);
    assert.deepEqual(await readdir(w.store), []);

    await fillStore(w.store, 1500, 512);
    const piped = await runCli(args);
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stderr, /erased 1500 blocks/, 'the log line stays');
    assert.doesNotMatch(piped.stderr, /blocks (deleted|listed):|\r|\x1b/);
    assert.deepEqual(await readdir(w.store), []);

    await fillStore(w.store, 1500, 512);
    const quiet = await runOnTerminal([...args, '--quiet']);
    assert.equal(quiet.code, 0, quiet.output);
    assert.doesNotMatch(quiet.output, /blocks (deleted|listed):/);
    assert.deepEqual(await readdir(w.store), [], 'erased all the same');
  } finally {
    await w.cleanup();
  }
});

test('--listBlocks at mount shows progress on a terminal only, and not with --quiet', { timeout: 300000 }, async () => {
  const w = await workdir('progress-list');
  try {
    await fillStore(w.store, 1200, 4096);
    const args = ['-f', '--test', '--noAutoDetect', '--size=8m', '--blockSize=4k', '--listBlocks', w.store, w.mnt];
    // The listing runs while mounted: unmount once it is done.
    const tty = await runOnTerminal(args, { mountpoint: w.mnt, ready: async (output) => /found 1200 non-zero blocks/.test(output) });
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, /\rnon-zero blocks found: 1200 in \d+\.\d s/);
    assert.match(tty.output, /found 1200 non-zero blocks in/, 'the log line stays');

    const m = await startMount(args.slice(1), w.mnt);
    await waitForLog(m, /found 1200 non-zero blocks in/);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.doesNotMatch(m.stderr(), /non-zero blocks found:|\r/);

    // --quiet drops the info line too: the stats file says when the listing is done.
    const done = async () => (await statsNow(w.mnt)).zero_block_cache_listing === 'done';
    const quiet = await runOnTerminal([...args, '--quiet'], { mountpoint: w.mnt, ready: done });
    assert.equal(quiet.code, 0, quiet.output);
    assert.doesNotMatch(quiet.output, /non-zero blocks found:/);
  } finally {
    await w.cleanup();
  }
});

test('cache-file recovery at mount shows verification progress on a terminal only', { timeout: 300000 }, async () => {
  const w = await workdir('progress-cache');
  try {
    const cacheFile = join(w.root, 'blocks.cache');
    const args = ['--test', '--size=4m', '--blockSize=4k', `--blockCacheFile=${cacheFile}`, '--blockCacheSize=1024', w.store, w.mnt];
    // Fill the cache file: 256 blocks written, then a clean unmount leaves them in it.
    let m = await startMount(args, w.mnt);
    await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'file')}`, 'bs=64k', 'count=16', 'conv=notrunc,fsync', 'status=none']);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });

    const tty = await runOnTerminal(['-f', ...args], { mountpoint: w.mnt });
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, /\rcached blocks verified: 256\/256 in \d+\.\d s/);
    assert.match(tty.output, /256 clean blocks reused \(256 verified/, 'the log line stays');

    m = await startMount(args, w.mnt);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.match(m.stderr(), /256 clean blocks reused/);
    assert.doesNotMatch(m.stderr(), /cached blocks verified:|\r/);

    const quiet = await runOnTerminal(['-f', ...args, '--quiet'], { mountpoint: w.mnt });
    assert.equal(quiet.code, 0, quiet.output);
    assert.doesNotMatch(quiet.output, /cached blocks verified:/);
  } finally {
    await w.cleanup();
  }
});
