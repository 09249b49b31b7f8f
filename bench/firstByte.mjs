#!/usr/bin/env node
// Alternating runs of a mount's first read, for two or more variants (a built tree of ours, or
// upstream's newest build): the time from the process's start until the mounted file is there,
// and from then until 4 KiB of one stored block have been read (block 0 by default, which ours
// fetches while it mounts; --block 100 reads one it does not). The file is looked for every
// millisecond, and read from this process (no command started in between).
//
//   node bench/firstByte.mjs [--delay 0] [--rounds 10] [--block 0] [--tls]
//                            --variant 'NAME|TREE|S3BACKER FLAGS|NODE FLAGS' --variant ...
//
// TREE `upstream` runs upstream's newest build (as run.mjs finds it). Before the timed rounds each
// variant mounts once, writes the block, reads another and stays up 3.5 s: ours then keeps a code
// cache with the read path in it, as a mount that has run for a while does. Needs root.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEndpoint } from './endpoint.mjs';
import { variantCommandLine } from './variants.mjs';
import { BLOCK_SIZE, median, mountVariant, read4k, sleep, unmount, unmountQuietly } from './fileMount.mjs';

const USAGE = `usage: node bench/firstByte.mjs [--delay MS] [--rounds N] [--block N] [--tls]
       --variant 'NAME|TREE|S3BACKER FLAGS|NODE FLAGS' (two or more; TREE upstream: upstream's newest build)`;
const { values, variants } = variantCommandLine(
  'firstByte',
  USAGE,
  {
    delay: { type: 'string', default: '0' },
    rounds: { type: 'string', default: '10' },
    block: { type: 'string', default: '0' },
  },
  { valid: (v) => Number.isInteger(Number(v.block)) && Number(v.block) >= 0 && Number(v.block) < 4096 },
);
const BLOCK = Number(values.block);

const work = await mkdtemp(join(tmpdir(), 's3b-firstbyte-'));
const mnt = join(work, 'mnt');
await mkdir(mnt);
const endpoint = await startEndpoint(Number(values.delay), { tls: values.tls === true });

const mount = (v, index) =>
  mountVariant(v, { endpoint, mnt, prefix: `fb${index}/`, env: { XDG_CACHE_HOME: join(work, `cache-${index}`) } });

try {
  // Each variant's own bucket prefix: the block stored, the read path run, the code cache made.
  for (const [i, v] of variants.entries()) {
    const { exited } = await mount(v, i);
    execFileSync('sh', [
      '-c',
      `head -c ${BLOCK_SIZE} /dev/urandom | dd of=${join(mnt, 'file')} bs=${BLOCK_SIZE} seek=${BLOCK} conv=notrunc,fsync status=none`,
    ]);
    read4k(mnt, BLOCK === 50 ? 51 : 50);
    await sleep(3500);
    await unmount(mnt, exited, v.name);
  }
  const results = variants.map(() => []);
  for (let round = 1; round <= Number(values.rounds); round++) {
    const order = variants.map((_, i) => i);
    if (round % 2 === 0) order.reverse();
    for (const i of order) {
      const { mountedMs, exited } = await mount(variants[i], i);
      const firstMs = read4k(mnt, BLOCK);
      await unmount(mnt, exited, variants[i].name);
      results[i].push({ mountedMs, firstMs });
      console.log(
        `round ${round} ${variants[i].name}: file there at ${mountedMs.toFixed(1)} ms, block ${BLOCK}'s first 4 KiB ${firstMs.toFixed(2)} ms after`,
      );
    }
  }
  console.log(`\nfirst 4 KiB of block ${BLOCK} at ${values.delay} ms per request, ${values.rounds} rounds (medians):`);
  for (const [i, v] of variants.entries()) {
    const m = (k) => median(results[i].map((r) => r[k]));
    console.log(
      `  ${v.name}: file there at ${m('mountedMs').toFixed(1)} ms, read ${m('firstMs').toFixed(2)} ms after; in all ${median(results[i].map((r) => r.mountedMs + r.firstMs)).toFixed(1)} ms`,
    );
  }
} finally {
  unmountQuietly(mnt);
  endpoint.stop();
}
