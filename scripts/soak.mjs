#!/usr/bin/env node
// npm run soak: a bounded soak run. fio does random 4 KiB reads and writes with verification
// (crc32c, checked as it goes) on ext4 on a loop device over s3backer with a small block cache
// (64 blocks), against the in-memory S3 endpoint with 5 ms per request. Afterwards the file's
// SHA-256 is compared through a fresh mount with no cache. Reports operations, errors (must be
// 0) and the peak resident memory of the s3backer process. Needs root.
//   node scripts/soak.mjs [--minutes N] [--mb N]
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, mkdir, rm, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEndpoint } from '../bench/endpoint.mjs';

const run = promisify(execFile);
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const MINUTES = arg('minutes', 3);
const MB = arg('mb', 192);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.getuid?.() !== 0) {
  console.error('soak: needs root (FUSE, loop devices)');
  process.exit(1);
}

async function mountOurs(args, mnt) {
  const child = spawn(process.execPath, [CLI, '-f', ...args, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const memory = { peakMiB: 0 };
  const sampler = setInterval(async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    memory.peakMiB = Math.max(memory.peakMiB, Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
  }, 200);
  exited.then(() => clearInterval(sampler));
  for (let i = 0; i < 1200; i++) {
    if (
      await stat(join(mnt, 'file')).then(
        () => true,
        () => false,
      )
    )
      return { exited, memory, stderr: () => stderr };
    await sleep(25);
  }
  throw new Error(`s3backer did not mount: ${stderr}`);
}

const work = await mkdtemp(join(tmpdir(), 's3backer-soak-'));
const mnt = join(work, 'mnt');
const data = join(work, 'data');
await mkdir(mnt);
await mkdir(data);
const endpoint = await startEndpoint(5);
const args = [
  `--baseURL=http://127.0.0.1:${endpoint.port}/`,
  '--accessId=soak',
  '--accessKey=soak',
  '--blockSize=256k',
  '--size=1g',
  '--blockCacheSize=64',
  'soak',
];
let failed = false;
try {
  let m = await mountOurs(args, mnt);
  await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1', join(mnt, 'file')]);
  await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
  process.stderr.write(`soak: ${MINUTES} min of fio random read/write with verification on ${MB} MiB...\n`);
  const fio = await run(
    'fio',
    [
      '--name=soak',
      `--filename=${join(data, 'soak.bin')}`,
      `--size=${MB}M`,
      '--rw=randrw',
      '--rwmixread=50',
      '--bs=4k',
      '--direct=1',
      '--ioengine=psync',
      '--numjobs=1',
      '--verify=crc32c',
      '--verify_backlog=4096',
      '--verify_fatal=1',
      '--verify_state_save=0', // else fio leaves local-soak-0-verify.state in the working directory
      `--runtime=${Math.round(MINUTES * 60)}`,
      '--time_based',
      '--output-format=json',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const job = JSON.parse(fio.stdout).jobs[0];
  const before = (await run('sha256sum', [join(data, 'soak.bin')])).stdout.split(' ')[0];
  await run('umount', [data]);
  await run('umount', [mnt]);
  const code = await m.exited;
  const peak = m.memory.peakMiB;

  // A fresh mount with no cache: everything comes back from the store.
  m = await mountOurs([...args.slice(0, -2), '--blockCacheSize=0', 'soak'], mnt);
  await run('mount', ['-o', 'loop,ro', join(mnt, 'file'), data]);
  const after = (await run('sha256sum', [join(data, 'soak.bin')])).stdout.split(' ')[0];
  await run('umount', [data]);
  await run('umount', [mnt]);
  await m.exited;

  const errors = job.error + (code === 0 ? 0 : 1) + (before === after ? 0 : 1);
  failed = errors !== 0;
  console.log(
    [
      '',
      `| soak (${MINUTES} min, ${MB} MiB, 64-block cache, 5 ms per request) | result |`,
      '| --- | --- |',
      `| fio reads / writes | ${job.read.total_ios} / ${job.write.total_ios} |`,
      `| fio errors (verification included) | ${job.error} |`,
      `| s3backer exit code | ${code} |`,
      `| content after a fresh mount | ${before === after ? 'identical' : 'DIFFERENT'} |`,
      `| peak resident memory | ${peak.toFixed(0)} MiB |`,
    ].join('\n'),
  );
} catch (err) {
  failed = true;
  console.error(`soak: ${err.message}\n${err.stdout ?? ''}`);
} finally {
  await run('umount', [data]).catch(() => {});
  await run('umount', [mnt]).catch(() => {});
  endpoint.stop();
  await rm(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
