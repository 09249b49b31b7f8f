#!/usr/bin/env node
// npm run bench: ours against Debian's s3backer 1.5.4 in one run, same endpoint (bench/memoryS3.mjs,
// in memory, on loopback), same block size, through ext4 on a loop device:
//   sequential write of 256 MiB, timed until the writer's fsync, the unmount and the exit of the
//   s3backer process (so the data is in the store); sequential read of it after a fresh mount;
//   random 4 KiB reads and writes with fio on a warm cache; time to the first byte after mounting;
//   peak resident memory of the s3backer process during the write. The same workloads on a memory
//   FUSE file (bench/memoryFuse.mjs) give the FUSE ceiling; raw node:http requests per second
//   (bench/requests.mjs) the network one.
// Needs root. Writes a table per delay to stdout and JSON to bench/results/.
//   node bench/run.mjs [--delays 0,20] [--mb N] [--tools requests,ours,upstream,ceiling]
import { spawn, execFile } from 'node:child_process';
import { startEndpoint } from './endpoint.mjs';
import { measureRequests, formatRequests, percent } from './requests.mjs';
import { promisify } from 'node:util';
import { mkdtemp, mkdir, writeFile, rm, stat, readFile, open } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'dist', 'cli', 'main.js');
const UPSTREAM = '/usr/bin/s3backer';
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const DELAYS = (process.argv.includes('--delays') ? process.argv[process.argv.indexOf('--delays') + 1] : '0,20').split(',').map(Number);
const MB = arg('mb', 256);
const TOOLS = process.argv.includes('--tools') ? process.argv[process.argv.indexOf('--tools') + 1].split(',') : undefined;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now() / 1000;

if (process.getuid?.() !== 0) {
  console.error('bench: needs root (FUSE, loop devices)');
  process.exit(1);
}

async function mountTool(tool, args, mnt) {
  const [cmd, ...pre] = tool.command;
  const child = spawn(cmd, [...pre, '-f', ...args, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  exited.then(() => (done = true));
  // Peak resident memory, sampled from /proc while it runs.
  const memory = { peakKiB: 0 };
  const sampler = setInterval(async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    memory.peakKiB = Math.max(memory.peakKiB, kib);
  }, 100);
  exited.then(() => clearInterval(sampler));
  for (let i = 0; i < 2400; i++) {
    if (done) throw new Error(`${tool.name} exited: ${stderr}`);
    if (await stat(join(mnt, 'file')).then(() => true, () => false)) return { exited, memory, stderr: () => stderr };
    await sleep(25);
  }
  throw new Error(`${tool.name} did not mount`);
}

async function dropCaches() {
  await run('sync');
  await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']).catch(() => {});
}

async function benchTool(tool, endpoint, work, source) {
  const mnt = join(work, `${tool.id}-mnt`);
  const data = join(work, `${tool.id}-data`);
  await mkdir(mnt);
  await mkdir(data);
  const args = [
    `--baseURL=http://127.0.0.1:${endpoint.port}/`, '--accessId=bench', '--accessKey=bench',
    `--prefix=${tool.id}/`, '--blockSize=256k', '--size=1g', ...tool.extra, 'bench',
  ];
  const result = { tool: tool.name };
  try {
    // Sequential write, until the data is in the store and the process has exited.
    let m = await mountTool(tool, args, mnt);
    await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1', join(mnt, 'file')]);
    await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
    let t = now();
    await run('dd', [`if=${source}`, `of=${join(data, 'big')}`, 'bs=1M', 'conv=fsync', 'status=none']);
    await run('umount', [data]);
    await run('umount', [mnt]);
    await m.exited;
    result.writeMBs = MB / (now() - t);
    result.peakRssMiB = m.memory.peakKiB / 1024;

    // Time from starting the process to the first 4 KiB read back (block 0, fetched from S3).
    t = now();
    m = await mountTool(tool, args, mnt);
    const fh = await open(join(mnt, 'file'), 'r');
    await fh.read(Buffer.alloc(4096), 0, 4096, 0);
    await fh.close();
    result.firstByteMs = (now() - t) * 1000;
    await run('umount', [mnt]);
    await m.exited;

    // Sequential read after a fresh mount: nothing cached.
    m = await mountTool(tool, args, mnt);
    await run('mount', ['-o', 'loop,ro', join(mnt, 'file'), data]);
    await dropCaches();
    t = now();
    await run('dd', [`if=${join(data, 'big')}`, 'of=/dev/null', 'bs=1M', 'status=none']);
    result.readMBs = MB / (now() - t);

    // Again with the kernel's caches dropped: what the tool's own cache serves.
    await dropCaches();
    t = now();
    await run('dd', [`if=${join(data, 'big')}`, 'of=/dev/null', 'bs=1M', 'status=none']);
    result.readWarmMBs = MB / (now() - t);

    // Random 4 KiB reads on a warm cache (the read above filled it).
    const fio = await run('fio', [
      '--name=randread', `--filename=${join(data, 'big')}`, '--rw=randread', '--bs=4k', '--direct=1',
      '--ioengine=psync', '--runtime=10', '--time_based', '--readonly', '--output-format=json',
    ]);
    result.randReadIOPS = JSON.parse(fio.stdout).jobs[0].read.iops;
    await run('umount', [data]);
    await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
    const fioWrite = await run('fio', [
      '--name=randwrite', `--filename=${join(data, 'big')}`, '--rw=randwrite', '--bs=4k', '--direct=1',
      '--ioengine=psync', '--runtime=10', '--time_based', '--output-format=json',
    ]);
    result.randWriteIOPS = JSON.parse(fioWrite.stdout).jobs[0].write.iops;
    await run('umount', [data]);
    await run('umount', [mnt]);
    await m.exited;
  } finally {
    await run('umount', [data]).catch(() => {});
    await run('umount', [mnt]).catch(() => {});
  }
  return result;
}

const work = await mkdtemp(join(tmpdir(), 's3backer-bench-'));
const runs = [];
try {
  // In memory: the read tests drop the page cache, and a source read back from disk would time the disk.
  const source = `/dev/shm/s3backer-bench-source-${process.pid}`;
  await run('sh', ['-c', `head -c ${MB}M /dev/urandom > ${source}`]);
  const shm = `/dev/shm/s3backer-bench-${process.pid}`;
  const tools = [
    { id: 'ours', name: 's3backer (this package)', command: [process.execPath, CLI], extra: [] },
    ...(existsSync(UPSTREAM) ? [{ id: 'upstream', name: 's3backer 1.5.4 (Debian)', command: [UPSTREAM], extra: [] }] : []),
    // The FUSE ceiling: a file in memory behind the same binding, no S3 (same at every delay).
    { id: 'ceiling', name: 'memory FUSE file', command: [process.execPath, join(HERE, 'memoryFuse.mjs')], extra: [`--store=${shm}`] },
  ].filter((t) => !TOOLS || TOOLS.includes(t.id));
  // The network ceiling: raw node:http against the same endpoint, and our request path.
  let requests;
  if (!TOOLS || TOOLS.includes('requests')) {
    process.stderr.write('bench: requests per second, raw node:http and ours...\n');
    requests = await measureRequests({ seconds: 4 });
    console.log(formatRequests(requests));
  }
  const pct = percent;
  let ceilingResult;
  for (const delay of DELAYS) {
    const endpoint = await startEndpoint(delay);
    try {
      const results = [];
      for (const tool of tools) {
        // The ceiling involves no S3: measured once, shown at every delay.
        if (tool.id === 'ceiling' && ceilingResult) {
          results.push(ceilingResult);
          continue;
        }
        process.stderr.write(`bench: ${tool.name}, ${delay} ms per request...\n`);
        results.push(await benchTool({ ...tool, id: `${tool.id}-${delay}` }, endpoint, work, source));
        if (tool.id === 'ceiling') ceilingResult = results[results.length - 1];
      }
      runs.push({ delayMs: delay, results });
      const byId = (id) => results.find((r) => r.tool === tools.find((t) => t.id === id)?.name);
      const [ours, upstream, ceiling] = ['ours', 'upstream', 'ceiling'].map(byId);
      const row = (label, key, unit, digits = 1, withCeiling = true) => {
        const cell = (r) => (r ? `${r[key].toFixed(digits)} ${unit}` : 'n/a');
        const ratio = ours && upstream ? `${(ours[key] / upstream[key]).toFixed(2)}x` : '';
        const frac = withCeiling && ceiling && ours ? pct(ours[key], ceiling[key]) : '';
        return `| ${label} | ${cell(ours)} | ${cell(upstream)} | ${ratio} | ${withCeiling ? cell(ceiling) : ''} | ${frac} |`;
      };
      console.log([
        '',
        `Block size 256 KiB, ${MB} MiB through ext4 on a loop device, in-memory S3 on loopback, ${delay} ms per request.`,
        '',
        '| workload | ours | Debian s3backer 1.5.4 | ours / upstream | memory FUSE file (ceiling) | ours / ceiling |',
        '| --- | --- | --- | --- | --- | --- |',
        row(`sequential write ${MB} MiB (until stored)`, 'writeMBs', 'MB/s'),
        row(`sequential read ${MB} MiB (cold)`, 'readMBs', 'MB/s'),
        row(`sequential read ${MB} MiB (warm cache)`, 'readWarmMBs', 'MB/s'),
        row('random 4 KiB reads (warm cache)', 'randReadIOPS', 'IOPS', 0),
        row('random 4 KiB writes (warm cache)', 'randWriteIOPS', 'IOPS', 0),
        row('time to first byte after mount', 'firstByteMs', 'ms', 0, false),
        row('peak resident memory while writing', 'peakRssMiB', 'MiB', 0, false),
      ].join('\n'));
    } finally {
      endpoint.stop();
    }
  }
  const file = join(HERE, 'results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify({ date: new Date().toISOString(), mb: MB, requests, runs }, null, 2));
  console.error(`bench: results written to ${file}`);
} finally {
  await rm(work, { recursive: true, force: true });
  await rm(`/dev/shm/s3backer-bench-${process.pid}`, { force: true });
  await rm(`/dev/shm/s3backer-bench-source-${process.pid}`, { force: true });
}
