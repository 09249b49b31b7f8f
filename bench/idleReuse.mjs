#!/usr/bin/env node
// A read after the mount has sat idle: does it go out on a kept-alive connection, or pay for a
// new one? Against a distant S3 a new connection costs the TCP and TLS handshakes' round trips
// before the request's own. The endpoint stands in for that with --connect-delay (each new
// connection held that long) and closes connections idle for --idle-close ms, as S3 does after
// about 20 s. Each variant mounts, reads 4 KiB of one block (its connections open), then after
// each pause reads 4 KiB of another block it has not read, timed from this process.
//
//   node bench/idleReuse.mjs [--delay 20] [--connect-delay 40] [--idle-close 20000]
//                            [--pauses 1,6,12,25] [--rounds 2] [--tls]
//                            --variant 'NAME|TREE|S3BACKER FLAGS|NODE FLAGS' --variant ...
//
// TREE `upstream` runs upstream's newest build (as run.mjs finds it). Needs root.
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEndpoint } from './endpoint.mjs';
import { variantCommandLine } from './variants.mjs';
import { median, mountVariant, read4k, sleep, unmount, unmountQuietly } from './fileMount.mjs';

const USAGE = `usage: node bench/idleReuse.mjs [--delay MS] [--connect-delay MS] [--idle-close MS] [--pauses S,S,...]
       [--rounds N] [--tls] --variant 'NAME|TREE|S3BACKER FLAGS|NODE FLAGS' (one or more; TREE upstream: upstream's newest build)`;
const { values, variants } = variantCommandLine(
  'idleReuse',
  USAGE,
  {
    delay: { type: 'string', default: '20' },
    'connect-delay': { type: 'string', default: '40' },
    'idle-close': { type: 'string', default: '20000' },
    pauses: { type: 'string', default: '1,6,12,25' },
    rounds: { type: 'string', default: '2' },
  },
  {
    minVariants: 1,
    valid: (v) =>
      v.pauses.split(',').every((p) => Number(p) >= 0) &&
      [v.delay, v['connect-delay'], v['idle-close'], v.rounds].every((n) => Number.isInteger(Number(n)) && Number(n) >= 0),
  },
);
const pauses = values.pauses.split(',').map(Number);

const work = await mkdtemp(join(tmpdir(), 's3b-idle-'));
const mnt = join(work, 'mnt');
await mkdir(mnt);
const endpoint = await startEndpoint(Number(values.delay), {
  tls: values.tls === true,
  connectDelay: Number(values['connect-delay']),
  idleCloseMs: Number(values['idle-close']),
});

try {
  const results = variants.map(() => pauses.map(() => []));
  for (let round = 1; round <= Number(values.rounds); round++) {
    const order = variants.map((_, i) => i);
    if (round % 2 === 0) order.reverse();
    for (const i of order) {
      const { exited } = await mountVariant(variants[i], { endpoint, mnt, prefix: `idle${i}/`, pollMs: 5 });
      read4k(mnt, 1);
      await sleep(500); // whatever the first read set going (read-ahead) has ended
      const line = [];
      for (const [j, pause] of pauses.entries()) {
        await sleep(pause * 1000);
        // Blocks far apart: none is within another's read-ahead.
        const ms = read4k(mnt, 300 * (j + 1));
        results[i][j].push(ms);
        line.push(`${pause} s: ${ms.toFixed(1)} ms`);
      }
      await unmount(mnt, exited, variants[i].name);
      console.log(`round ${round} ${variants[i].name}: ${line.join(', ')}`);
    }
  }
  const how = `${values.tls ? 'over HTTPS, ' : ''}${values.delay} ms per request, new connections held ${values['connect-delay']} ms, idle ones closed after ${values['idle-close']} ms`;
  console.log(`\n4 KiB of an unread block after a pause (${how}; medians of ${values.rounds} rounds):`);
  console.log(`| | ${pauses.map((p) => `after ${p} s`).join(' | ')} |`);
  console.log(`| --- | ${pauses.map(() => '---').join(' | ')} |`);
  for (const [i, v] of variants.entries())
    console.log(`| ${v.name} | ${results[i].map((xs) => `${median(xs).toFixed(1)} ms`).join(' | ')} |`);
} finally {
  unmountQuietly(mnt);
  endpoint.stop();
}
