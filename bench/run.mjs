#!/usr/bin/env node
// npm run bench: ours against Debian's s3backer 1.5.4 in one run, same endpoint (bench/memoryS3.mjs,
// in memory, on loopback), same block size, through ext4 on a loop device:
//   sequential write of 256 MiB, timed until the writer's fsync, the unmount and the exit of the
//   s3backer process (so the data is in the store); sequential read of it after a fresh mount;
//   random 4 KiB reads with fio on a warm cache.
// Needs root. Writes a table to stdout and JSON to bench/results/.
//   node bench/run.mjs [--delay MS] [--mb N]
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, mkdir, writeFile, rm, stat } from 'node:fs/promises';
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
const DELAY = arg('delay', 0);
const MB = arg('mb', 256);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now() / 1000;

if (process.getuid?.() !== 0) {
  console.error('bench: needs root (FUSE, loop devices)');
  process.exit(1);
}

async function startEndpoint() {
  const child = spawn(process.execPath, [join(HERE, 'memoryS3.mjs'), '--delay', String(DELAY)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', () => reject(new Error('endpoint exited')));
  });
  return { port, stop: () => child.kill() };
}

async function mountTool(tool, args, mnt) {
  const [cmd, ...pre] = tool.command;
  const child = spawn(cmd, [...pre, '-f', ...args, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  exited.then(() => (done = true));
  for (let i = 0; i < 600; i++) {
    if (done) throw new Error(`${tool.name} exited: ${stderr}`);
    if (await stat(join(mnt, 'file')).then(() => true, () => false)) return { exited, stderr: () => stderr };
    await sleep(50);
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
    await run('fusermount', ['-u', mnt]);
    await m.exited;
    result.writeMBs = MB / (now() - t);

    // Sequential read after a fresh mount: nothing cached.
    m = await mountTool(tool, args, mnt);
    await run('mount', ['-o', 'loop,ro', join(mnt, 'file'), data]);
    await dropCaches();
    t = now();
    await run('dd', [`if=${join(data, 'big')}`, 'of=/dev/null', 'bs=1M', 'status=none']);
    result.readMBs = MB / (now() - t);

    // Random 4 KiB reads on a warm cache (the read above filled it).
    const fio = await run('fio', [
      '--name=randread', `--filename=${join(data, 'big')}`, '--rw=randread', '--bs=4k', '--direct=1',
      '--ioengine=psync', '--runtime=10', '--time_based', '--readonly', '--output-format=json',
    ]);
    result.randReadIOPS = JSON.parse(fio.stdout).jobs[0].read.iops;
    await run('umount', [data]);
    await run('fusermount', ['-u', mnt]);
    await m.exited;
  } finally {
    await run('umount', [data]).catch(() => {});
    await run('fusermount', ['-u', mnt]).catch(() => {});
  }
  return result;
}

const work = await mkdtemp(join(tmpdir(), 's3backer-bench-'));
const endpoint = await startEndpoint();
try {
  const source = join(work, 'source.bin');
  await run('sh', ['-c', `head -c ${MB}M /dev/urandom > ${source}`]);
  const tools = [
    { id: 'ours', name: 's3backer (this package)', command: [process.execPath, CLI], extra: [] },
    ...(existsSync(UPSTREAM) ? [{ id: 'upstream', name: 's3backer 1.5.4 (Debian)', command: [UPSTREAM], extra: [] }] : []),
  ];
  const results = [];
  for (const tool of tools) {
    process.stderr.write(`bench: ${tool.name}...\n`);
    results.push(await benchTool(tool, endpoint, work, source));
  }
  const [ours, upstream] = results;
  const row = (label, key, unit) => {
    const cell = (r) => (r ? `${r[key].toFixed(1)} ${unit}` : 'n/a');
    const ratio = ours && upstream ? `${(ours[key] / upstream[key]).toFixed(2)}x` : '';
    return `| ${label} | ${cell(ours)} | ${cell(upstream)} | ${ratio} |`;
  };
  const table = [
    `Block size 256 KiB, ${MB} MiB through ext4 on a loop device, in-memory S3 on loopback with ${DELAY} ms per request.`,
    '',
    '| workload | ours | Debian s3backer 1.5.4 | ours / upstream |',
    '| --- | --- | --- | --- |',
    row(`sequential write ${MB} MiB (until stored)`, 'writeMBs', 'MB/s'),
    row(`sequential read ${MB} MiB (cold)`, 'readMBs', 'MB/s'),
    row('random 4 KiB reads (warm cache)', 'randReadIOPS', 'IOPS'),
  ].join('\n');
  console.log(table);
  const file = join(HERE, 'results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify({ date: new Date().toISOString(), delayMs: DELAY, mb: MB, results }, null, 2));
  console.error(`bench: results written to ${file}`);
} finally {
  endpoint.stop();
  await rm(work, { recursive: true, force: true });
}
