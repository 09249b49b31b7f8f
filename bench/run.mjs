#!/usr/bin/env node
// npm run bench: ours against upstream's newest build and Debian's s3backer 1.5.4 in one run, same
// endpoint (bench/endpoint/, in memory, on loopback), same block size, through ext4 on a loop
// device, at each delay per S3 request:
//   sequential write of 256 MiB, timed until the writer's fsync, the unmount and the exit of the
//   s3backer process (so the data is in the store); sequential read of it after a fresh mount (cold)
//   and, in a mount a first pass has filled, again with the kernel's caches dropped (warm); random 4 KiB reads and
//   writes with fio; fstrim of a deleted 1 GiB file on a 2 GiB disk; time to the first byte after
//   mounting (from the command's start, and from the file's appearing); peak resident memory while
//   writing; the S3 requests of the write and of the cold read, by kind (counted by the endpoint
//   under each tool's prefix);
//   CPU-seconds (user + system of the whole process, mount to exit, bench/rusage.py) per GiB
//   written and read, and of a mount that does nothing; for ours, the sizes of the write and read
//   requests the kernel sent (its /metrics histogram). Each tool runs that --rounds times (3), the
//   tools taking turns with the first changing every round; figures are medians, ratios the median
//   of the rounds' ratios with their range (this machine's speed swings by a third within minutes).
// The FUSE ceiling, once: a file in memory behind our native session and behind fuse-native 2.2.6
// (the binding before it, installed into .cache/ on first use), and on tmpfs with no FUSE (the
// bound), dd straight onto the file and the same workloads through ext4 (bench/memoryFuse.mjs);
// the network ceiling: raw node:http
// requests per second (bench/requests.mjs).
// Needs root. Writes Markdown tables to stdout and JSON to bench/results/.
//   node bench/run.mjs [--delays 0,20] [--mb N] [--tools requests,ceiling,ours,upstream,debian] [--rounds 3] [--ceilingRounds 3]
import { spawn, execFile } from 'node:child_process';
import { startEndpoint, storeFlags } from './endpoint.mjs';
import { measureRequests, formatRequests, percent } from './requests.mjs';
import { ensureFuseNative } from './fuseNative.mjs';
import { warmMemory } from './hostMemory.mjs';
import { promisify } from 'node:util';
import { createServer } from 'node:net';
import { mkdtemp, mkdir, writeFile, rm, stat, readFile, open } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const USAGE = `usage: node bench/run.mjs [--delays 0,20] [--mb N] [--tools requests,ceiling,ours,upstream,debian] [--rounds 3] [--ceilingRounds 3] [--blockSize 256k] [--warmMiB 2048] [--tls]
  Needs root; takes about 30 minutes with everything. Tables go to stdout, JSON to bench/results/.
  --warmMiB: memory touched and freed before each timed sequential pass (bench/hostMemory.mjs); 0: none.
  --tls: the tools reach the endpoint over HTTPS (TLS 1.3, a self-signed certificate passed with --cacert).
  S3BACKER_UPSTREAM_BIN=path names upstream's newest build (else the one scripts/setup.sh built).
  S3BACKER_BENCH_OURS_FLAGS='--flag ...' adds flags to ours (to measure a setting; the JSON records them).`;
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'dist', 'cli', 'main.js');
const RUSAGE = join(HERE, 'rusage.py');
const DEBIAN = '/usr/bin/s3backer';
const option = (name) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : undefined);
const DELAYS = (option('delays') ?? '0,20').split(',').map(Number);
const MB = Number(option('mb') ?? 256);
const GIB = MB / 1024;
const TOOLS = option('tools')?.split(',');
const CEILING_ROUNDS = Number(option('ceilingRounds') ?? 3);
const ROUNDS = Number(option('rounds') ?? 3);
/** Every tool's --blockSize (upstream's syntax: 64k, 1m); 256k unless given. */
const BLOCK_SIZE = option('blockSize') ?? '256k';
const WARM_MIB = Number(option('warmMiB') ?? 2048);
/** The tools reach the endpoint over HTTPS, as they reach S3 (TLS 1.3, the endpoint's self-signed certificate). */
const TLS = process.argv.includes('--tls');
/** Speeds of the warm-ups (MB/s): how fast this machine gave fresh memory during the run. */
const warmSpeeds = [];
/** Before a timed pass that fills the page cache: backed memory on the free lists (bench/hostMemory.mjs). */
async function settle() {
  if (WARM_MIB > 0) warmSpeeds.push(await warmMemory(WARM_MIB));
}
const wanted = (id) => !TOOLS || TOOLS.includes(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now() / 1000;

if (process.getuid?.() !== 0) {
  console.error('bench: needs root (FUSE, loop devices)');
  process.exit(1);
}

/** Upstream's newest build, as the tests find it: S3BACKER_UPSTREAM_BIN or what setup.sh built. */
function newestUpstream() {
  let bin = process.env.S3BACKER_UPSTREAM_BIN;
  if (!bin) {
    try {
      bin = readFileSync(join(HERE, '..', '.cache', 'upstream-bin'), 'utf8').trim();
    } catch {
      return { missing: 'no S3BACKER_UPSTREAM_BIN and no .cache/upstream-bin (scripts/setup.sh builds it)' };
    }
  }
  return existsSync(bin) ? { bin } : { missing: `${bin} does not exist` };
}

/**
 * The tools run without NODE_EXTRA_CA_CERTS: a machine that sets it (this one names its whole CA
 * bundle) makes every Node process parse those certificates at start, 0.09 CPU-s here, which a
 * user's machine does not pay and the bench's plain-HTTP endpoint does not need.
 */
/** Flags added to ours' defaults, to measure a setting (S3BACKER_BENCH_OURS_FLAGS, split on spaces). */
const OURS_FLAGS = (process.env.S3BACKER_BENCH_OURS_FLAGS ?? '').split(' ').filter(Boolean);
const TOOL_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));

/** Without python3 there is no wait4(), so no CPU figures; everything else still runs. */
const HAVE_WAIT4 = await run('python3', ['-c', 'import os; os.wait4']).then(
  () => true,
  () => false,
);

/**
 * Node's own start and exit (`node -e 0`, the median of 11), the floor under our time to first
 * byte: the command's first line runs only once Node has started.
 */
async function nodeStartExitMs() {
  const times = [];
  for (let i = 0; i < 11; i++) {
    const t = now();
    await run(process.execPath, ['-e', '0'], { env: TOOL_ENV });
    times.push((now() - t) * 1000);
  }
  return median(times);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });

/**
 * Starts a tool in the foreground and resolves once its file is there, looking every `pollMs`.
 * With `usage`, through bench/rusage.py: `finished` then resolves with the process's CPU seconds
 * and peak memory.
 */
async function mountTool(tool, args, mnt, { usage = false, metrics = false, pollMs = 25 } = {}) {
  const port = metrics && tool.metrics ? await freePort() : undefined;
  const argv = [...tool.command, '-f', ...args, ...(port ? [`--metricsPort=${port}`] : []), mnt];
  const usageFile = `${mnt}.rusage.json`;
  const [cmd, ...rest] = usage && HAVE_WAIT4 ? ['python3', RUSAGE, usageFile, ...argv] : argv;
  const child = spawn(cmd, rest, { stdio: ['ignore', 'ignore', 'pipe'], env: TOOL_ENV });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  exited.then(() => (done = true));
  const finished = exited.then(async (code) => {
    if (code !== 0) process.stderr.write(`bench: ${tool.name} exited with ${code}: ${stderr.trim()}\n`);
    if (!usage || !HAVE_WAIT4) return undefined;
    const u = JSON.parse(await readFile(usageFile, 'utf8'));
    return { cpuS: u.userS + u.systemS, maxRssKiB: u.maxRssKiB };
  });
  for (const deadline = now() + 60; now() < deadline;) {
    if (done) throw new Error(`${tool.name} exited: ${stderr}`);
    if (
      await stat(join(mnt, 'file')).then(
        () => true,
        () => false,
      )
    )
      return { finished, port };
    await sleep(pollMs);
  }
  throw new Error(`${tool.name} did not mount`);
}

/**
 * The kernel's request sizes so far, from the tool's s3backer_fuse_request_bytes histogram,
 * summed over its other labels (answered_in: by the session or by the block stack).
 */
async function requestSizes(port) {
  if (port === undefined) return undefined;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sizes = () => ({ count: 0, bytes: 0, upTo512KiB: 0, upTo1MiB: 0, inSession: 0 });
  const out = { read: sizes(), write: sizes() };
  for (const [, series, labelText, value] of text.matchAll(/^s3backer_fuse_request_bytes_(bucket|sum|count)\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const s = out[labels.operation];
    if (!s) continue;
    const n = Number(value);
    if (series === 'count') {
      s.count += n;
      if (labels.answered_in === 'session') s.inSession += n;
    } else if (series === 'sum') s.bytes += n;
    else if (labels.le === '524288') s.upTo512KiB += n;
    else if (labels.le === '1048576') s.upTo1MiB += n;
  }
  return out;
}

/** What the kernel sent between two readings: how many, how many above 512 KiB (1 MiB being the largest), their mean size, how many the session answered without JS. */
function requestsBetween(before, after, op) {
  if (!before || !after) return undefined;
  const d = Object.fromEntries(Object.keys(after[op]).map((k) => [k, after[op][k] - before[op][k]]));
  const over512KiB = d.upTo1MiB - d.upTo512KiB;
  return { count: d.count, over512KiB, meanKiB: d.count > 0 ? d.bytes / d.count / 1024 : 0, inSession: d.inSession };
}

/**
 * Runs `work` and returns the seconds it took, less those spent reading the tool's metrics, and
 * the request sizes before and after it (after: when `work` calls its argument, else at its end).
 */
async function timed(port, work) {
  let scraping = 0;
  const scrape = async () => {
    const t = now();
    const r = await requestSizes(port);
    scraping += now() - t;
    return r;
  };
  const before = await scrape();
  scraping = 0;
  let after;
  let marked;
  const t = now();
  // mark(): the time so far, for a figure that ends before the work does.
  await work(
    async () => (after = await scrape()),
    () => (marked = now() - t - scraping),
  );
  const seconds = now() - t - scraping;
  return { seconds, marked, before, after: after ?? (await scrape()) };
}

async function dropCaches() {
  await run('sync');
  await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']).catch(() => {});
}

const dd = (...args) => run('dd', ['bs=1M', 'status=none', ...args]);
const toolArgs = (tool, endpoint) => [
  ...storeFlags(endpoint),
  '--accessId=bench',
  '--accessKey=bench',
  `--prefix=${tool.id}/`,
  `--blockSize=${BLOCK_SIZE}`,
  '--size=1g',
  ...tool.extra,
  'bench',
];
const cpuPerGiB = (u) => (u ? u.cpuS / GIB : undefined);

/** The S3 requests the endpoint has counted under the tool's prefix, by kind (none for the ceiling's tools, which use no endpoint). */
async function s3Requests(endpoint, tool) {
  if (!endpoint.port) return undefined;
  const all = await (await fetch(`http://127.0.0.1:${endpoint.port}/_bench/requests`)).json();
  return { GET: 0, PUT: 0, HEAD: 0, DELETE: 0, LIST: 0, POST: 0, ...all[tool.id] };
}
const total = (c) => Object.values(c).reduce((a, b) => a + b, 0);

async function benchTool(tool, endpoint, work, source) {
  const mnt = join(work, `${tool.id}-mnt`);
  const data = join(work, `${tool.id}-data`);
  await mkdir(mnt, { recursive: true });
  await mkdir(data, { recursive: true });
  const args = toolArgs(tool, endpoint);
  const result = { id: tool.id, tool: tool.name };
  try {
    // Sequential write, until the data is in the store and the process has exited.
    let m = await mountTool(tool, args, mnt, { usage: true, metrics: true });
    await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1', join(mnt, 'file')]);
    await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
    await settle();
    const beforeWrite = await s3Requests(endpoint, tool);
    let t = await timed(m.port, async (scrape, mark) => {
      await dd(`if=${source}`, `of=${join(data, 'big')}`, 'conv=fsync');
      await run('umount', [data]);
      mark();
      await scrape(); // every write has reached the tool once the loop device is gone
      await run('umount', [mnt]);
      const u = await m.finished;
      result.writeCpuSPerGiB = cpuPerGiB(u);
      result.peakRssMiB = u && u.maxRssKiB / 1024;
    });
    result.writeMBs = MB / t.seconds;
    result.writeReachedMBs = MB / t.marked;
    result.writeRequests = requestsBetween(t.before, t.after, 'write');
    const afterWrite = await s3Requests(endpoint, tool);
    if (afterWrite) {
      result.writePuts = afterWrite.PUT - beforeWrite.PUT;
      result.writeGets = afterWrite.GET - beforeWrite.GET;
      result.writeOtherRequests = total(afterWrite) - total(beforeWrite) - result.writePuts - result.writeGets;
    }

    // Time from starting the process to the first 4 KiB read back (block 0, fetched from S3);
    // not through rusage.py, whose own start would count. The file is looked for every
    // millisecond: at 25 ms (until 7b59510) the wait for the next look was up to a third of
    // upstream's whole figure.
    // Also from the moment the file is there: what a reader waits for once a background mount's
    // command has returned, without the process's start.
    let t0 = now();
    m = await mountTool(tool, args, mnt, { pollMs: 1 });
    const mounted = now();
    const fh = await open(join(mnt, 'file'), 'r');
    await fh.read(Buffer.alloc(4096), 0, 4096, 0);
    await fh.close();
    result.firstByteMs = (now() - t0) * 1000;
    result.firstByteMountedMs = (now() - mounted) * 1000;
    await run('umount', [mnt]);
    await m.finished;

    // What a mount costs by itself: the share of the figures per GiB that is not per byte.
    m = await mountTool(tool, args, mnt, { usage: true });
    await run('umount', [mnt]);
    result.idleCpuS = (await m.finished)?.cpuS;

    // Sequential read after a fresh mount: nothing cached; its own process, for its CPU time.
    const beforeRead = await s3Requests(endpoint, tool);
    m = await mountTool(tool, args, mnt, { usage: true, metrics: true });
    await run('mount', ['-o', 'loop,ro', join(mnt, 'file'), data]);
    await dropCaches();
    await settle();
    t = await timed(m.port, () => dd(`if=${join(data, 'big')}`, 'of=/dev/null'));
    result.readMBs = MB / t.seconds;
    result.readRequests = requestsBetween(t.before, t.after, 'read');
    await run('umount', [data]);
    await run('umount', [mnt]);
    result.readCpuSPerGiB = cpuPerGiB(await m.finished);
    const afterRead = await s3Requests(endpoint, tool);
    if (afterRead) {
      result.readGets = afterRead.GET - beforeRead.GET;
      result.readOtherRequests = total(afterRead) - total(beforeRead) - result.readGets;
    }

    // Read again in the same mount with the kernel's caches dropped: what the tool's own cache serves.
    m = await mountTool(tool, args, mnt);
    await run('mount', ['-o', 'loop,ro', join(mnt, 'file'), data]);
    await dropCaches();
    await dd(`if=${join(data, 'big')}`, 'of=/dev/null');
    await dropCaches();
    await settle();
    t0 = now();
    await dd(`if=${join(data, 'big')}`, 'of=/dev/null');
    result.readWarmMBs = MB / (now() - t0);

    // Random 4 KiB reads on a warm cache (the reads above filled it), then writes.
    const fio = async (rw, ...extra) => {
      const r = await run('fio', [
        `--name=${rw}`,
        `--filename=${join(data, 'big')}`,
        `--rw=${rw}`,
        '--bs=4k',
        '--direct=1',
        '--ioengine=psync',
        '--runtime=5',
        '--time_based',
        '--output-format=json',
        ...extra,
      ]);
      return JSON.parse(r.stdout).jobs[0];
    };
    result.randReadIOPS = (await fio('randread', '--readonly')).read.iops;
    await run('umount', [data]);
    await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
    result.randWriteIOPS = (await fio('randwrite')).write.iops;
    await run('umount', [data]);
    await run('umount', [mnt]);
    await m.finished;
  } finally {
    await run('umount', [data]).catch(() => {});
    await run('umount', [mnt]).catch(() => {});
  }
  return result;
}

/** The endpoint's object count under a prefix (its ListObjectsV2, one page). */
async function countObjects(endpoint, prefix) {
  const xml = await (
    await fetch(`http://127.0.0.1:${endpoint.port}/bench?list-type=2&prefix=${encodeURIComponent(prefix)}&max-keys=100000`)
  ).text();
  return (xml.match(/<Key>/g) ?? []).length;
}

/**
 * TRIM: a 1 GiB file written through ext4 on a 2 GiB disk, deleted, then `fstrim` timed until it
 * returns and the file is synced; the objects left are counted (ext4's metadata stays). A tool
 * whose fstrim fails gets no figure.
 */
async function trimDeleted(tool, endpoint, work, source) {
  const mnt = join(work, `${tool.id}-trim-mnt`);
  const data = join(work, `${tool.id}-trim-data`);
  await mkdir(mnt, { recursive: true });
  await mkdir(data, { recursive: true });
  const prefix = `${tool.id}-trim/`;
  const args = toolArgs(tool, endpoint).map((a) =>
    a.startsWith('--prefix=') ? `--prefix=${prefix}` : a === '--size=1g' ? '--size=2g' : a,
  );
  const m = await mountTool(tool, args, mnt);
  try {
    await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1', join(mnt, 'file')]);
    await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
    for (let i = 0; i < 1024 / MB; i++) await dd(`if=${source}`, `of=${join(data, 'big')}`, `seek=${i * MB}`, 'conv=notrunc');
    await run('sync', ['-f', join(data, 'big')]);
    await run('sync', ['-f', join(mnt, 'file')]);
    const stored = await countObjects(endpoint, prefix);
    await run('rm', [join(data, 'big')]);
    await run('sync', ['-f', data]);
    const t0 = now();
    const trimmed = await run('fstrim', [data]).then(
      () => true,
      () => false,
    );
    await run('sync', ['-f', join(mnt, 'file')]);
    const trimS = now() - t0;
    const left = await countObjects(endpoint, prefix);
    return trimmed ? { trimS, trimObjectsBefore: stored, trimObjectsLeft: left } : {};
  } finally {
    await run('umount', [data]).catch(() => {});
    await run('umount', [mnt]).catch(() => {});
    await m.finished;
  }
}

/**
 * dd straight onto the FUSE file (no ext4, no loop device): the write, or a read direct or
 * buffered. The write is timed on a second pass in the same mount: the first one also pays for
 * the kernel's page cache of the new mount's file (the same for both bindings, and it swings
 * from 240 to 620 MB/s here); it is reported on its own.
 */
async function straight(tool, kind, work, source) {
  const mnt = join(work, `${tool.id}-straight-mnt`);
  await mkdir(mnt, { recursive: true });
  const file = join(mnt, 'file');
  const m = await mountTool(tool, toolArgs(tool, { port: 0 }), mnt, { usage: true, metrics: true });
  try {
    const result = {};
    const write = () => dd(`if=${source}`, `of=${file}`, 'conv=notrunc,fsync');
    if (kind === 'write') {
      await settle();
      const t0 = now();
      await write();
      result.firstPassMBs = MB / (now() - t0);
    } else {
      await dropCaches();
    }
    await settle();
    const t = await timed(m.port, () =>
      kind === 'write' ? write() : dd(`if=${file}`, 'of=/dev/null', `count=${MB}`, ...(kind === 'direct' ? ['iflag=direct'] : [])),
    );
    await run('umount', [mnt]);
    const u = await m.finished;
    result.MBs = MB / t.seconds;
    result.cpuSPerGiB = u && u.cpuS / (GIB * (kind === 'write' ? 2 : 1));
    result.requests = requestsBetween(t.before, t.after, kind === 'write' ? 'write' : 'read');
    return result;
  } finally {
    await run('umount', [mnt]).catch(() => {});
  }
}

/**
 * Through ext4 on a loop device set up with `losetup --direct-io=on`: the loop device then
 * writes to the FUSE file with asynchronous direct I/O, several requests in flight and no second
 * page cache under ext4's. The write until the tool has exited, then a cold read in a new mount.
 */
async function loopDirect(tool, work, source) {
  const mnt = join(work, `${tool.id}-dio-mnt`);
  const data = join(work, `${tool.id}-dio-data`);
  await mkdir(mnt, { recursive: true });
  await mkdir(data, { recursive: true });
  const args = toolArgs(tool, { port: 0 });
  const attach = async (...extra) =>
    (await run('losetup', ['--find', '--show', '--direct-io=on', ...extra, join(mnt, 'file')])).stdout.trim();
  let device;
  const detach = async () => {
    if (device) await run('losetup', ['-d', device]);
    device = undefined;
  };
  const result = {};
  try {
    let m = await mountTool(tool, args, mnt, { usage: true, metrics: true });
    await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1', join(mnt, 'file')]);
    device = await attach();
    await run('mount', [device, data]);
    await settle();
    let t = await timed(m.port, async (scrape) => {
      await dd(`if=${source}`, `of=${join(data, 'big')}`, 'conv=fsync');
      await run('umount', [data]);
      await detach();
      await scrape();
      await run('umount', [mnt]);
      result.writeCpuSPerGiB = cpuPerGiB(await m.finished);
    });
    result.writeMBs = MB / t.seconds;
    result.writeReachedMBs = MB / t.marked;
    result.writeRequests = requestsBetween(t.before, t.after, 'write');

    m = await mountTool(tool, args, mnt, { usage: true, metrics: true });
    device = await attach('--read-only');
    await run('mount', ['-o', 'ro', device, data]);
    await dropCaches();
    await settle();
    t = await timed(m.port, () => dd(`if=${join(data, 'big')}`, 'of=/dev/null'));
    result.readMBs = MB / t.seconds;
    result.readRequests = requestsBetween(t.before, t.after, 'read');
    await run('umount', [data]);
    await detach();
    await run('umount', [mnt]);
    result.readCpuSPerGiB = cpuPerGiB(await m.finished);
  } finally {
    await run('umount', [data]).catch(() => {});
    await detach().catch(() => {});
    await run('umount', [mnt]).catch(() => {});
  }
  return result;
}

/** The median of each figure over rounds of the same shape. */
function median(rounds) {
  const first = rounds[0];
  if (typeof first === 'number') {
    const sorted = [...rounds].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }
  if (first === null || typeof first !== 'object') return first;
  return Object.fromEntries(Object.keys(first).map((k) => [k, median(rounds.map((r) => r[k]))]));
}

/**
 * The FUSE ceiling of each binding: straight onto the file, then through ext4 as the tools.
 * This machine's speed swings by tens of percent within a minute, so the bindings take turns at
 * each workload, the first of them changes every round, and each figure is the median of the rounds.
 */
async function benchCeiling(bindings, work, source, rounds) {
  const all = Object.fromEntries(bindings.map((b) => [b.binding, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...bindings].reverse() : bindings;
    const got = Object.fromEntries(bindings.map((b) => [b.binding, { tool: b.name }]));
    const what = { ext4: 'through ext4', ext4dio: 'through ext4, loop with direct I/O' };
    for (const kind of ['write', 'direct', 'buffered', 'ext4', 'ext4dio']) {
      for (const b of order) {
        process.stderr.write(`bench: FUSE ceiling, round ${round + 1}/${rounds}, ${b.name}, ${what[kind] ?? `dd ${kind}`}...\n`);
        got[b.binding][kind] =
          kind === 'ext4'
            ? await benchTool(b, { port: 0 }, work, source)
            : kind === 'ext4dio'
              ? await loopDirect(b, work, source)
              : await straight(b, kind, work, source);
      }
    }
    for (const b of bindings) all[b.binding].push(got[b.binding]);
  }
  return Object.fromEntries(bindings.map((b) => [b.binding, { ...median(all[b.binding]), rounds: all[b.binding] }]));
}

const fixed = (v, digits) => (v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(digits));
const ratio = (a, b) => (a === undefined || b === undefined || !b ? '' : `${(a / b).toFixed(2)}x`);
/**
 * The median of the rounds' ratios (each round's pair ran minutes apart at most), and their
 * range when there are several: how far one run's ratio can be trusted on this machine.
 */
function pairedRatio(a, b, key) {
  const get = typeof key === 'function' ? key : (r) => r[key];
  const each = a.map((r, i) => (b[i] ? get(r) / get(b[i]) : NaN)).filter((x) => Number.isFinite(x));
  if (each.length === 0) return '';
  const mid = median(each);
  return each.length === 1 ? `${mid.toFixed(2)}x` : `${mid.toFixed(2)}x (${Math.min(...each).toFixed(2)}-${Math.max(...each).toFixed(2)})`;
}
const requestCell = (r) =>
  r
    ? `${percent(r.over512KiB, r.count || 1)} of ${r.count} (mean ${r.meanKiB.toFixed(0)} KiB${r.inSession ? `; ${percent(r.inSession, r.count)} answered without JS` : ''})`
    : 'n/a';

function ceilingTable(ceiling, skipped) {
  const [neu, mapped, old, none] = [ceiling.native, ceiling['native-map'], ceiling['fuse-native'], ceiling.none];
  const row = (label, get, unit, digits = 1) => {
    const cell = (c) => (c ? `${fixed(get(c), digits)} ${unit}` : skipped ? 'skipped' : 'n/a');
    const against = (c) => (c && old ? pairedRatio(c.rounds, old.rounds, (r) => get(r)) : '');
    return `| ${label} | ${cell(neu)} | ${cell(mapped)} | ${cell(old)} | ${against(neu)} | ${against(mapped)} | ${cell(none)} | ${against(none)} |`;
  };
  const requestsOf = (c, get) => (c ? requestCell(get(c)) : skipped ? 'skipped' : 'n/a');
  const requests = (label, get) => `| ${label} | ${requestsOf(neu, get)} | ${requestsOf(mapped, get)} | ${requestsOf(old, get)} | | | | |`;
  return [
    '',
    `The FUSE ceiling: a 1 GiB file kept in memory (/dev/shm), no S3, ${MB} MiB with dd bs=1M; medians of ${CEILING_ROUNDS} rounds, ratios the median of the rounds' ratios (their range). CPU: the whole server process, mount to exit.`,
    'The last columns have no FUSE at all (the file on tmpfs, bind-mounted): what the kernel, the loop device and ext4 take by themselves, so the best ratio any binding could reach against fuse-native.',
    ...(skipped ? ['', `fuse-native column skipped: ${skipped}`] : []),
    '',
    '| workload | native session (fuser, FUSE 3), JS answers | native session, block map (Rust answers) | fuse-native 2.2.6 (libfuse 2, big_writes) | JS answers / fuse-native | block map / fuse-native | no FUSE (tmpfs) | no FUSE / fuse-native |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    row('write straight onto the FUSE file', (c) => c.write.MBs, 'MB/s'),
    row('the same, first pass after mounting', (c) => c.write.firstPassMBs, 'MB/s'),
    row('read straight, iflag=direct', (c) => c.direct.MBs, 'MB/s'),
    row('read straight, buffered', (c) => c.buffered.MBs, 'MB/s'),
    row('write through ext4 on a loop device (until exited)', (c) => c.ext4.writeMBs, 'MB/s'),
    row(
      'the same, until the loop device is gone (every write in the FUSE server; its exit not counted)',
      (c) => c.ext4.writeReachedMBs,
      'MB/s',
    ),
    row('read through ext4 on a loop device (cold)', (c) => c.ext4.readMBs, 'MB/s'),
    row('write through ext4, loop device with --direct-io=on (until exited)', (c) => c.ext4dio?.writeMBs, 'MB/s'),
    row('read through ext4, loop device with --direct-io=on (cold)', (c) => c.ext4dio?.readMBs, 'MB/s'),
    row('random 4 KiB reads through ext4', (c) => c.ext4.randReadIOPS, 'IOPS', 0),
    row('random 4 KiB writes through ext4', (c) => c.ext4.randWriteIOPS, 'IOPS', 0),
    row('CPU-s per GiB, write straight (both passes)', (c) => c.write.cpuSPerGiB, 's', 2),
    row('CPU-s per GiB, read straight, direct', (c) => c.direct.cpuSPerGiB, 's', 2),
    row('CPU-s per GiB, read straight, buffered', (c) => c.buffered.cpuSPerGiB, 's', 2),
    row('CPU-s per GiB, write through ext4', (c) => c.ext4.writeCpuSPerGiB, 's', 2),
    row('CPU-s per GiB, read through ext4', (c) => c.ext4.readCpuSPerGiB, 's', 2),
    row('CPU-s per GiB, write through ext4, loop with direct I/O', (c) => c.ext4dio?.writeCpuSPerGiB, 's', 2),
    row('CPU-s of an idle mount (start to exit)', (c) => c.ext4.idleCpuS, 's', 2),
    requests('write requests > 512 KiB (max 1 MiB), straight', (c) => c.write.requests),
    requests('write requests > 512 KiB, through ext4', (c) => c.ext4.writeRequests),
    requests('read requests > 512 KiB, direct', (c) => c.direct.requests),
    requests('read requests > 512 KiB, buffered', (c) => c.buffered.requests),
    requests('read requests > 512 KiB, through ext4', (c) => c.ext4.readRequests),
    requests('write requests > 512 KiB, through ext4, loop with direct I/O', (c) => c.ext4dio?.writeRequests),
  ].join('\n');
}

function delayTable(delay, results, ceiling, notes) {
  const [ours, newest, debian] = ['ours', 'upstream', 'debian'].map((id) => results.find((r) => r.id.startsWith(`${id}-`)));
  const row = (label, key, unit, digits = 1, withCeiling = true) => {
    const cell = (r, missing = 'n/a') => (r ? `${fixed(r[key], digits)} ${unit}` : missing);
    const against = (r) => (ours && r ? pairedRatio(ours.rounds, r.rounds, key) : '');
    return `| ${label} | ${cell(ours)} | ${cell(newest, NEWEST.missing ? 'missing' : 'n/a')} | ${against(newest)} | ${cell(debian)} | ${against(debian)} | ${withCeiling ? cell(ceiling) : ''} | ${withCeiling && ceiling && ours ? percent(ours[key], ceiling[key]) : ''} |`;
  };
  const requests = (label, key) => `| ${label} | ${requestCell(ours?.[key])} | n/a | | n/a | | ${requestCell(ceiling?.[key])} | |`;
  return [
    '',
    `Block size ${BLOCK_SIZE}, ${MB} MiB through ext4 on a loop device, in-memory S3 on loopback${TLS ? ' over HTTPS' : ''}, ${delay} ms per request. Figures: medians of ${ROUNDS} rounds, the tools taking turns; ratios: the median of the rounds' ratios (their range). CPU: the whole process, mount to exit; lower is better for time, memory and CPU.`,
    ...notes.map((n) => `\n${n}`),
    '',
    `| workload | ours | ${NEWEST.name ?? 'upstream newest'} | ours / newest | Debian s3backer 1.5.4 | ours / 1.5.4 | memory FUSE file, native session (ceiling) | ours / ceiling |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    row(`sequential write ${MB} MiB (until stored)`, 'writeMBs', 'MB/s'),
    row(`sequential read ${MB} MiB (cold)`, 'readMBs', 'MB/s'),
    row(`sequential read ${MB} MiB (warm cache)`, 'readWarmMBs', 'MB/s'),
    row('random 4 KiB reads (warm cache)', 'randReadIOPS', 'IOPS', 0),
    row('random 4 KiB writes (warm cache)', 'randWriteIOPS', 'IOPS', 0),
    row('fstrim of a deleted 1 GiB file', 'trimS', 's', 2, false),
    row("objects left after it (of the file's and ext4's)", 'trimObjectsLeft', '', 0, false),
    row("time to first byte after mount (from the command's start)", 'firstByteMs', 'ms', 0, false),
    row('time to first byte once the file is there', 'firstByteMountedMs', 'ms', 1, false),
    row('peak resident memory while writing', 'peakRssMiB', 'MiB', 0, false),
    row('CPU-s per GiB written', 'writeCpuSPerGiB', 's', 2),
    row('CPU-s per GiB read (cold)', 'readCpuSPerGiB', 's', 2),
    row('CPU-s of an idle mount (start to exit)', 'idleCpuS', 's', 2),
    row('S3 PUTs while writing (dd to exit)', 'writePuts', '', 0, false),
    row('S3 GETs while writing', 'writeGets', '', 0, false),
    row('other S3 requests while writing (HEAD, DELETE, lists)', 'writeOtherRequests', '', 0, false),
    row('S3 GETs in the cold read (mount to exit)', 'readGets', '', 0, false),
    row('other S3 requests in the cold read (the mounted flag, HEAD, lists)', 'readOtherRequests', '', 0, false),
    requests('write requests > 512 KiB (max 1 MiB)', 'writeRequests'),
    requests('read requests > 512 KiB (cold read)', 'readRequests'),
  ].join('\n');
}

const NEWEST = newestUpstream();
if (NEWEST.bin) {
  // "s3backer version 2.1.6 (2.1.6-12-g76bab14)": the describe in parentheses names the commit.
  const text = await run(NEWEST.bin, ['--version']).then(
    (r) => r.stdout + r.stderr,
    () => '',
  );
  NEWEST.version = /version \S+ \(([^)]+)\)/.exec(text)?.[1] ?? /version (\S+)/.exec(text)?.[1];
  NEWEST.name = `upstream newest (${NEWEST.version ?? NEWEST.bin})`;
}
const work = await mkdtemp(join(tmpdir(), 's3backer-bench-'));
const shm = (name) => `/dev/shm/s3backer-bench-${name}-${process.pid}`;
// Which code ran: results are cited by file, and the code they measured must be findable.
const commit = await run('git', ['-C', join(HERE, '..'), 'rev-parse', 'HEAD']).then(
  (r) => r.stdout.trim(),
  () => undefined,
);
const output = {
  date: new Date().toISOString(),
  commit,
  ...(OURS_FLAGS.length ? { oursFlags: OURS_FLAGS } : {}),
  node: process.version,
  mb: MB,
  blockSize: BLOCK_SIZE,
  ...(TLS ? { tls: true } : {}),
  upstreamNewest: NEWEST,
};
try {
  // In memory: the read tests drop the page cache, and a source read back from disk would time the disk.
  const source = shm('source');
  await run('sh', ['-c', `head -c ${MB}M /dev/urandom > ${source}`]);
  const notes = [];
  if (!HAVE_WAIT4) notes.push('No CPU figures: python3 (for wait4) is missing.');
  if (wanted('upstream') && NEWEST.missing) {
    notes.push(`Upstream's newest build is missing: ${NEWEST.missing}.`);
    process.stderr.write(`bench: upstream's newest build is missing (${NEWEST.missing}): its column stays empty\n`);
  }
  const tools = [
    {
      id: 'ours',
      name: `s3backer (this package)${OURS_FLAGS.length ? ` ${OURS_FLAGS.join(' ')}` : ''}`,
      command: [process.execPath, CLI],
      extra: OURS_FLAGS,
      metrics: true,
    },
    ...(NEWEST.bin ? [{ id: 'upstream', name: NEWEST.name, command: [NEWEST.bin], extra: [] }] : []),
    ...(existsSync(DEBIAN) ? [{ id: 'debian', name: 's3backer 1.5.4 (Debian)', command: [DEBIAN], extra: [] }] : []),
  ].filter((t) => wanted(t.id));
  if (tools.some((t) => t.id === 'ours')) {
    output.nodeStartExitMs = await nodeStartExitMs();
    notes.push(
      `Node by itself (\`node -e 0\`, ${process.version}, start to exit, the median of 11): ${output.nodeStartExitMs.toFixed(0)} ms, the floor under ours' time to first byte.`,
    );
  }

  // The network ceiling: raw node:http against the same endpoint, and our request path.
  if (wanted('requests')) {
    process.stderr.write('bench: requests per second, raw node:http and ours...\n');
    output.requests = await measureRequests({ seconds: 4 });
    console.log(formatRequests(output.requests));
  }

  // The FUSE ceiling involves no S3: measured once, shown at every delay.
  let ceiling;
  if (wanted('ceiling')) {
    const skipped = await ensureFuseNative();
    if (skipped) process.stderr.write(`bench: the fuse-native column is skipped: ${skipped}\n`);
    const binding = (b, name) => ({
      id: `ceiling-${b}`,
      binding: b,
      name,
      metrics: true,
      command: [process.execPath, join(HERE, 'memoryFuse.mjs')],
      extra: [`--binding=${b}`, `--store=${shm(`ceiling-${b}`)}`],
    });
    const bindings = [
      binding('native', 'memory FUSE file, native session'),
      binding('native-map', 'memory FUSE file, native session through a block map'),
      ...(skipped ? [] : [binding('fuse-native', 'memory FUSE file, fuse-native 2.2.6')]),
      binding('none', 'the file on tmpfs, no FUSE'),
    ];
    output.ceiling = await benchCeiling(bindings, work, source, CEILING_ROUNDS);
    output.fuseNativeSkipped = skipped;
    console.log(ceilingTable(output.ceiling, skipped));
    ceiling = output.ceiling.native.ext4;
  }

  output.runs = [];
  output.rounds = ROUNDS;
  for (const delay of tools.length > 0 ? DELAYS : []) {
    const endpoint = await startEndpoint(delay, { tls: TLS });
    try {
      // As in the ceiling: the tools take turns, the first changes every round, figures are medians.
      const rounds = Object.fromEntries(tools.map((t) => [t.id, []]));
      for (let round = 0; round < ROUNDS; round++) {
        const order = tools.map((_, i) => tools[(i + round) % tools.length]);
        for (const tool of order) {
          process.stderr.write(`bench: ${tool.name}, ${delay} ms per request, round ${round + 1}/${ROUNDS}...\n`);
          const id = `${tool.id}-${delay}-r${round + 1}`;
          const result = await benchTool({ ...tool, id }, endpoint, work, source);
          rounds[tool.id].push({ ...result, ...(await trimDeleted({ ...tool, id }, endpoint, work, source)) });
        }
      }
      const results = tools.map((t) => ({ ...median(rounds[t.id]), id: `${t.id}-${delay}`, rounds: rounds[t.id] }));
      output.runs.push({ delayMs: delay, results });
      console.log(delayTable(delay, results, ceiling, notes));
    } finally {
      endpoint.stop();
    }
  }
  if (warmSpeeds.length > 0) {
    const sorted = [...warmSpeeds].sort((a, b) => a - b);
    output.warmMemory = { mib: WARM_MIB, mbs: { min: sorted[0], median: median(sorted), max: sorted[sorted.length - 1] } };
    console.log(
      `\nBefore each timed sequential pass the bench touched and freed ${WARM_MIB} MiB (bench/hostMemory.mjs): that took ${sorted[0].toFixed(0)}-${sorted[sorted.length - 1].toFixed(0)} MB/s (median ${median(sorted).toFixed(0)}); memory the host still backs is touched at several GB/s.`,
    );
  }
  const file = join(HERE, 'results', `bench-${output.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(output, null, 2));
  console.error(`bench: results written to ${file}`);
} finally {
  await rm(work, { recursive: true, force: true });
  for (const name of ['source', 'ceiling-native', 'ceiling-native-map', 'ceiling-fuse-native']) await rm(shm(name), { force: true });
  await rm(`${shm('ceiling-none')}.d`, { recursive: true, force: true });
}
