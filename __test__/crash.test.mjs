// SIGKILL at a random moment while ext4 on the disk is busy writing and fsync'ing files, with and
// without a cache file. After remounting (the cache file's dirty blocks recovered), the journal
// replays, e2fsck finds the filesystem clean, and every file whose fsync had returned is there
// with its content.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { startS3Server } from './helpers/s3server.mjs';
import { useRecordedS3 } from './helpers/recordingProxy.mjs';
import { startMount, workdir, run, isMounted } from './helpers/ours.mjs';

// s3rver stores whatever part of a PUT arrived before the connection dropped; S3 stores nothing.
// The recording proxy gives s3rver S3's all-or-nothing PUTs, which a kill mid-upload relies on.
const env = useRecordedS3('crash', { before, after, workdir, startS3Server });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Writes files of random size into dir, fsyncs each (and the directory), then prints
// "name sha256" once its fsync has returned; runs until killed.
const writerScript = `
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const dir = process.argv[1];
const dfd = fs.openSync(dir, 'r');
for (let i = 0; ; i++) {
  const data = crypto.randomBytes(1024 + crypto.randomInt(200000));
  const name = 'f' + i;
  const fd = fs.openSync(path.join(dir, name), 'w');
  fs.writeSync(fd, data);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.fsyncSync(dfd);
  process.stdout.write(name + ' ' + crypto.createHash('sha256').update(data).digest('hex') + '\\n');
}
`;

async function crashRound(label, extraFlags, recoverFlags) {
  const prefix = `${label}/`;
  const flags = [
    `--baseURL=${env.proxy.endpoint}/`,
    '--accessId=S3RVER',
    '--accessKey=S3RVER',
    `--prefix=${prefix}`,
    '--blockSize=4k',
    '--size=64m',
    '--blockCacheSize=256',
    ...extraFlags,
  ];
  const data = join(env.w.root, `${label}-data`);
  await mkdir(data, { recursive: true });
  let m = await startMount([...flags, 'disk', env.w.mnt], env.w.mnt);
  const image = join(env.w.mnt, 'file');
  await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', image]);
  await run('mount', ['-o', 'loop', image, data]);
  const writer = spawn(process.execPath, ['-e', writerScript, data], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  writer.stdout.on('data', (d) => (out += d));
  writer.stderr.on('data', () => {}); // I/O errors after the kill are expected
  // Let it write for a while, then kill s3backer mid-stream.
  for (let i = 0; i < 200 && out.split('\n').length < 4; i++) await sleep(50);
  await sleep(randomInt(100, 1500));
  m.child.kill('SIGKILL');
  await m.exited;
  const synced = out
    .split('\n')
    .filter((l) => l.includes(' '))
    .map((l) => l.split(' '));
  writer.kill('SIGKILL');
  await run('umount', ['-l', data]).catch(() => {});
  await run('umount', ['-l', env.w.mnt]).catch(() => {});
  for (let i = 0; i < 50 && (await isMounted(env.w.mnt)); i++) await sleep(100);
  assert.ok(synced.length >= 3, `${label}: ${synced.length} files fsync'd before the kill`);

  // Remount: the flag a crash left is taken over (--force, or the cache file's own token).
  m = await startMount([...flags, ...recoverFlags, 'disk', env.w.mnt], env.w.mnt);
  try {
    await run('mount', ['-o', 'loop', image, data]).catch((err) => {
      throw new Error(err.message + m.stderr());
    }); // replays the journal
    for (const [name, sha] of synced) {
      const content = await readFile(join(data, name));
      assert.equal(createHash('sha256').update(content).digest('hex'), sha, `${label}: ${name} intact`);
    }
    await run('umount', [data]);
    const fsck = await run('e2fsck', ['-fn', image]).then(
      () => 0,
      (err) => err.code,
    );
    assert.equal(fsck, 0, `${label}: e2fsck finds the filesystem clean`);
  } finally {
    await run('umount', [data]).catch(() => {});
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  return synced.length;
}

test(
  "SIGKILL during fsync-heavy ext4 writes, no cache file: clean after journal replay, every fsync'd file present",
  { timeout: 240000 },
  async () => {
    for (let round = 0; round < 2; round++) await crashRound(`mem${round}`, [], ['--force']);
  },
);

test(
  "SIGKILL during fsync-heavy ext4 writes, with a cache file: recovered from the file, clean, every fsync'd file present",
  { timeout: 240000 },
  async () => {
    for (let round = 0; round < 2; round++) {
      const cf = join(env.w.root, `crash${round}.cache`);
      await crashRound(`file${round}`, [`--blockCacheFile=${cf}`, '--blockCacheWriteDelay=2000'], ['--blockCacheRecoverDirtyBlocks']);
    }
  },
);
