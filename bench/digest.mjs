#!/usr/bin/env node
// The upload path's digest (zero check and Content-MD5) in MiB/s and CPU-s per GiB: batched per
// turn of the event loop as uploads use it (src/backend/blockDigests.ts: up to sixteen blocks of
// one length side by side in one task), one block per native task, and node:crypto's MD5 (OpenSSL,
// on the JS thread), with 1, 8, 16 and 32 blocks in flight. Part of `npm run bench`.
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';

const require = createRequire(import.meta.url);
const { blockDigestsAsync } = require('../dist/native/addon.js');
const { blockDigest } = require('../dist/backend/blockDigests.js');
const SECONDS = Number(process.env.DIGEST_BENCH_SECONDS ?? 1.5);
const SIZE = 256 * 1024;

const ways = {
  'batched (uploads)': (b) => blockDigest(b),
  'one block a task': async (b) => (await blockDigestsAsync([b]))[0],
  'node:crypto md5': async (b) => createHash('md5').update(b).digest(),
};

async function measure(digest, inflight) {
  const blocks = Array.from({ length: inflight }, () => randomBytes(SIZE));
  let done = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  await Promise.all(
    blocks.map(async (block) => {
      while (performance.now() < deadline) {
        await digest(block);
        done++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const gib = (done * SIZE) / 2 ** 30;
  return { mibs: (gib * 1024) / seconds, cpuPerGiB: (cpu.user + cpu.system) / 1e6 / gib };
}

console.log(
  `Upload digest (zero check + MD5) of ${SIZE / 1024} KiB blocks: MiB/s, and CPU-s per GiB (the whole process, thread pool included):\n`,
);
console.log(`| in flight | ${Object.keys(ways).join(' | ')} |`);
console.log(
  `| --- |${Object.keys(ways)
    .map(() => ' --- |')
    .join('')}`,
);
for (const inflight of [1, 8, 16, 32]) {
  const cells = [];
  for (const digest of Object.values(ways)) {
    const r = await measure(digest, inflight);
    cells.push(`${r.mibs.toFixed(0)} MiB/s, ${r.cpuPerGiB.toFixed(2)} s`);
  }
  console.log(`| ${inflight} | ${cells.join(' | ')} |`);
}
