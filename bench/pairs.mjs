#!/usr/bin/env node
// Alternating A/B runs of one workload through ext4 on a loop device, for two or more variants of
// ours: a built tree (its dist/) with flags for Node and for s3backer. The quick check of one
// change that run.mjs is too slow for, and that one pair cannot settle on this machine (its speed
// swings by a third within minutes): the variants take turns, the first changing every round, and
// each keeps its own V8 code cache, made before the first timed run (a cache made by another
// build or other Node flags is refused, and a run without one compiles everything again).
//
//   node bench/pairs.mjs --workload read|write [--delay 0] [--rounds 6] [--mb 256] [--warmMiB 0]
//                        [--phases] [--tls] --variant 'NAME|TREE|S3BACKER FLAGS|NODE FLAGS' --variant ...
//
// TREE `upstream` runs upstream's newest build instead (as run.mjs finds it).
//
// read: one write of the file (by the first variant), then per run a fresh mount, the caches
// dropped, and a cold `dd` of the file; its time is the dd. write: per run a fresh mount, mkfs,
// then `dd ... conv=fsync` of the file and both unmounts; its time runs until the process exits
// (as run.mjs's "until stored"). CPU is user plus system of the whole process, start to exit.
// --phases also splits each run's CPU by what the process was doing (its /proc stat read at each
// step's end: the mount until its file is there, mkfs, the loop device's mount, the caches dropped
// and memory warmed, the timed dd, the loop device's unmount, then the tool's unmount until its
// exit), and prints each phase's median per variant: where ours and upstream's costs differ.
// Needs root. Prints a line per run, then each variant's medians and how often it was fastest.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startEndpoint, storeFlags } from './endpoint.mjs';
import { toolEnv, variantCommandLine } from './variants.mjs';
import { warmMemory } from './hostMemory.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const RUSAGE = join(HERE, 'rusage.py');
const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now() / 1000;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const USAGE = `usage: node bench/pairs.mjs --workload read|write [--delay MS] [--rounds N] [--mb N] [--warmMiB N] [--phases] [--tls]
       --variant 'NAME|TREE|S3BACKER FLAGS|NODE FLAGS' (two or more; the flag fields may be empty;
       TREE upstream: upstream's newest build)`;
const { values, variants } = variantCommandLine(
  'pairs',
  USAGE,
  {
    workload: { type: 'string' },
    delay: { type: 'string', default: '0' },
    rounds: { type: 'string', default: '6' },
    mb: { type: 'string', default: '256' },
    warmMiB: { type: 'string', default: '0' },
    phases: { type: 'boolean' },
  },
  { valid: (v) => ['read', 'write'].includes(v.workload ?? '') },
);
const WORKLOAD = values.workload;
const MB = Number(values.mb);
const ROUNDS = Number(values.rounds);
const WARM_MIB = Number(values.warmMiB);
const PHASES = values.phases === true;

const work = await mkdtemp(join(tmpdir(), 's3b-pairs-'));
const mnt = join(work, 'mnt');
const data = join(work, 'data');
await mkdir(mnt);
await mkdir(data);
const source = join('/dev/shm', `s3b-pairs-${process.pid}`);
const endpoint = await startEndpoint(Number(values.delay), { tls: values.tls === true });
let runs = 0;

/** CPU-s (user plus system) a live process has used so far; its name may hold spaces and parentheses. */
async function cpuSoFar(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime: clock ticks of 1/100 s
}

/**
 * The CPU a run spent in each of its steps: `step(name)` closes the step that ran since the last
 * one; `end(name, totalCpuS)` closes the last with the whole process's figure once it has exited.
 * The reads of /proc inside a timed write (after its dd and its loop unmount) add well under a
 * millisecond to it.
 */
function phaseClock(pid) {
  const phases = {};
  let last = 0;
  return {
    async step(name) {
      if (!PHASES || pid === undefined) return;
      const now = await cpuSoFar(pid).catch(() => last);
      phases[name] = now - last;
      last = now;
    },
    end(name, totalCpuS) {
      if (PHASES && pid !== undefined) phases[name] = totalCpuS - last;
      return phases;
    },
  };
}

/**
 * Mounts the variant in the foreground under rusage.py; resolves once its file is there, with
 * `finished` (its CPU and peak memory once it has exited) and `clock` (its CPU by step, --phases).
 */
async function mount(v, prefix) {
  const env = { ...toolEnv, XDG_CACHE_HOME: join(work, `cache-${v.name}`) };
  const usage = join(work, `usage-${runs++}.json`);
  const argv = [
    RUSAGE,
    usage,
    ...v.command,
    '-f',
    ...storeFlags(endpoint),
    '--accessId=bench',
    '--accessKey=bench',
    `--prefix=${prefix}/`,
    '--blockSize=256k',
    '--size=1g',
    ...v.flags,
    'bench',
    mnt,
  ];
  const child = spawn('python3', argv, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((r) => child.on('exit', r));
  const finished = exited.then(async (code) => {
    if (code !== 0) throw new Error(`${v.name} exited with ${code}: ${stderr.trim()}`);
    const u = JSON.parse(await readFile(usage, 'utf8'));
    return { cpuS: u.userS + u.systemS, maxRssMiB: u.maxRssKiB / 1024 };
  });
  finished.catch(() => {}); // awaited by the caller; an early exit is reported below
  for (const deadline = now() + 30; now() < deadline; await sleep(5)) {
    if (
      await stat(join(mnt, 'file')).then(
        () => true,
        () => false,
      )
    ) {
      // The tool is rusage.py's only child.
      const children = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '');
      const clock = phaseClock(Number(children.trim().split(' ')[0]) || undefined);
      await clock.step('mount');
      return { finished, clock };
    }
  }
  throw new Error(`${v.name} did not mount: ${stderr.trim()}`);
}
const umount = (dir) => run('umount', [dir]);
const dd = (...args) => run('dd', ['bs=1M', 'status=none', ...args]);
const mkfs = () => run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1', join(mnt, 'file')]);
const dropCaches = () => run('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);

/** One timed run of the workload: seconds, CPU-s and peak memory. */
async function once(v, round) {
  if (WORKLOAD === 'read') {
    const { finished, clock } = await mount(v, 'disk');
    await run('mount', ['-o', 'loop,ro', join(mnt, 'file'), data]);
    await clock.step('loop mount');
    await dropCaches();
    if (WARM_MIB > 0) await warmMemory(WARM_MIB);
    await clock.step('drop, warm');
    const t = now();
    await dd(`if=${join(data, 'big')}`, 'of=/dev/null');
    const seconds = now() - t;
    await clock.step('dd');
    await umount(data);
    await clock.step('loop umount');
    await umount(mnt);
    const usage = await finished;
    return { seconds, ...usage, phases: clock.end('umount, exit', usage.cpuS) };
  }
  const { finished, clock } = await mount(v, `w-${v.name}-${round}`);
  await mkfs();
  await clock.step('mkfs');
  await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
  await clock.step('loop mount');
  if (WARM_MIB > 0) await warmMemory(WARM_MIB);
  await clock.step('warm');
  const t = now();
  await dd(`if=${source}`, `of=${join(data, 'big')}`, 'conv=fsync');
  await clock.step('dd');
  await umount(data);
  await clock.step('loop umount');
  await umount(mnt);
  const usage = await finished;
  return { seconds: now() - t, ...usage, phases: clock.end('umount, exit', usage.cpuS) };
}

try {
  await dd('if=/dev/urandom', `of=${source}`, `count=${MB}`, 'iflag=fullblock');
  if (WORKLOAD === 'read') {
    // The disk every read run mounts, written once.
    const { finished } = await mount(variants[0], 'disk');
    await mkfs();
    await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
    await dd(`if=${source}`, `of=${join(data, 'big')}`, 'conv=fsync');
    await umount(data);
    await umount(mnt);
    await finished;
  }
  // Each variant's code cache, made by a mount that lives past the command's 3 s (codeCache.ts).
  for (const v of variants.filter((v) => v.tree !== 'upstream')) {
    const { finished } = await mount(v, 'warm');
    await sleep(3500);
    await umount(mnt);
    await finished;
  }
  const results = new Map(variants.map((v) => [v.name, []]));
  const wins = new Map(variants.map((v) => [v.name, 0]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    const times = [];
    for (const v of order) {
      const r = await once(v, round);
      results.get(v.name).push(r);
      times.push([v.name, r.seconds]);
      console.log(
        `round ${round + 1} ${v.name}: ${(r.seconds * 1000).toFixed(0)} ms, ${r.cpuS.toFixed(3)} CPU-s, ${r.maxRssMiB.toFixed(0)} MiB`,
      );
    }
    const fastest = times.reduce((a, b) => (b[1] < a[1] ? b : a))[0];
    wins.set(fastest, wins.get(fastest) + 1);
  }
  console.log(`\n${WORKLOAD} of ${MB} MiB through ext4 at ${values.delay} ms, ${ROUNDS} rounds (medians):`);
  for (const v of variants) {
    const rs = results.get(v.name);
    const ms = median(rs.map((r) => r.seconds * 1000));
    const cpu = median(rs.map((r) => r.cpuS));
    const rss = median(rs.map((r) => r.maxRssMiB));
    console.log(
      `  ${v.name}: ${ms.toFixed(0)} ms, ${cpu.toFixed(3)} CPU-s, ${rss.toFixed(0)} MiB peak; fastest in ${wins.get(v.name)} of ${ROUNDS}`,
    );
    if (PHASES) {
      // /proc counts in ticks of 10 ms: a phase's median is good to about that.
      const names = Object.keys(rs[0].phases);
      console.log(`    CPU-s by phase: ${names.map((n) => `${n} ${median(rs.map((r) => r.phases[n])).toFixed(2)}`).join(', ')}`);
    }
  }
} finally {
  await umount(data).catch(() => {});
  await umount(mnt).catch(() => {});
  endpoint.stop();
  await rm(source, { force: true });
  await rm(work, { recursive: true, force: true });
}
