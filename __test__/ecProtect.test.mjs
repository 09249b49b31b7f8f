// The eventual-consistency guard against an endpoint that answers an older version of a block
// right after it was rewritten.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server } from './helpers/s3server.mjs';
import { useRecordedS3 } from './helpers/recordingProxy.mjs';
import { startMount, workdir, run, runCli } from './helpers/ours.mjs';

const env = useRecordedS3('ec', { before, after, workdir, startS3Server });

const BS = 65536;
const base = (prefix) => [
  `--baseURL=${env.proxy.endpoint}/`,
  '--accessId=S3RVER',
  '--accessKey=S3RVER',
  `--prefix=${prefix}`,
  '--blockSize=64k',
  '--size=1m',
  '--blockCacheSize=0',
];

async function writeBlock(file, n, data) {
  const src = join(env.w.root, `b${n}.bin`);
  await writeFile(src, data);
  await run('dd', [`if=${src}`, `of=${file}`, 'bs=64k', `seek=${n}`, 'count=1', 'conv=notrunc,fsync', 'status=none']);
}
const readBlock = async (file, n) => {
  const out = join(env.w.root, 'out.bin');
  await run('dd', [`if=${file}`, `of=${out}`, 'bs=64k', `skip=${n}`, 'count=1', 'iflag=direct', 'status=none']);
  return readFile(out);
};

async function staleScenario(prefix, extra) {
  const m = await startMount([...base(prefix), ...extra, 'disk', env.w.mnt], env.w.mnt);
  try {
    const file = join(env.w.mnt, 'file');
    const v1 = randomBytes(BS);
    const v2 = randomBytes(BS);
    await writeBlock(file, 1, v1);
    assert.ok((await readBlock(file, 1)).equals(v1));
    await writeBlock(file, 1, v2);
    env.proxy.serveStale(`${prefix}00000001`, 2); // the next two GETs answer v1
    const read = await readBlock(file, 1);
    const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    return { read, v1, v2, stats };
  } finally {
    await m.stop();
  }
}

test('without the guard, a stale endpoint hands back the old block', { timeout: 60000 }, async () => {
  const { read, v1 } = await staleScenario('plain/', []);
  assert.ok(read.equals(v1), 'the stale answer got through (this is what the guard is for)');
});

test('with --md5CacheSize, stale answers are rejected and retried until the new data comes', { timeout: 60000 }, async () => {
  const { read, v2, stats } = await staleScenario('guard/', [
    '--md5CacheSize=100',
    '--md5CacheTime=10000',
    '--minWriteDelay=0',
    '--initialRetryPause=20',
  ]);
  assert.ok(read.equals(v2), 'the current data, not the stale one');
  assert.match(stats, /^md5_cache_stale_reads\s+2$/m);
  assert.match(stats, /^md5_cache_current_size\s+1 blocks$/m);
  assert.ok(env.proxy.requests.filter((r) => r.stale).length >= 2);
});

test('--minWriteDelay spaces writes of the same block', { timeout: 60000 }, async () => {
  env.proxy.clear();
  const m = await startMount([...base('delay/'), '--md5CacheSize=10', '--minWriteDelay=400', 'disk', env.w.mnt], env.w.mnt);
  try {
    const file = join(env.w.mnt, 'file');
    await writeBlock(file, 2, randomBytes(BS));
    await writeBlock(file, 2, randomBytes(BS));
    const puts = env.proxy.requests.filter((r) => r.method === 'PUT' && r.key === 'delay/00000002');
    assert.equal(puts.length, 2);
    assert.ok(puts[1].at - puts[0].at >= 380, `second PUT ${puts[1].at - puts[0].at} ms after the first`);
    // Upstream's unit: the time writers waited, not how often.
    const waited = /^md5_cache_write_delays\s+(\d+\.\d{3}) sec$/m.exec(await readFile(join(env.w.mnt, 'stats'), 'utf8'));
    assert.ok(waited && Number(waited[1]) >= 0.3 && Number(waited[1]) < 5, `write delays: ${waited?.[0]}`);
  } finally {
    await m.stop();
  }
});

test('guard flags without the guard are refused', async () => {
  const res = await runCli(['-f', ...base('x/'), '--minWriteDelay=5', 'disk', env.w.mnt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /need the guard on: give --md5CacheSize/);
});
