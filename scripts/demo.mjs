#!/usr/bin/env node
// The newcomer's demo: a disk that lives in (a local) S3, start to finish, each step explained.
// Needs root for the loop mount. Run through `npm run demo` after scripts/setup.sh.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, mkdir, writeFile, readFile, stat, rmdir } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3Server, listKeys } from '../__test__/helpers/s3server.mjs';

const run = promisify(execFile);
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha = (buf) => createHash('sha256').update(buf).digest('hex').slice(0, 16);
let stepNo = 0;
const step = (title, why) => console.log(`\n\x1b[1m${++stepNo}. ${title}\x1b[0m\n   ${why}`);
const show = (cmd) => console.log(`   $ ${cmd}`);

if (process.getuid?.() !== 0) {
  console.error('demo: the loop mount needs root; run it as root (or with sudo)');
  process.exit(1);
}

const root = await mkdtemp(join(tmpdir(), 's3backer-demo-'));
const mnt = join(root, 'mnt');
const data = join(root, 'data');
await mkdir(mnt);
await mkdir(data);
let server;
let child;
let loopMounted = false;

async function mountS3backer(args) {
  show(`s3backer -f ${args.join(' ')}`);
  child = spawn(process.execPath, [CLI, '-f', ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  let code;
  exited.then((c) => (code = c));
  for (let i = 0; i < 400; i++) {
    if (code !== undefined) throw new Error(`s3backer exited with ${code}`);
    if (
      await stat(join(mnt, 'file')).then(
        () => true,
        () => false,
      )
    )
      return { exited };
    await sleep(50);
  }
  throw new Error('s3backer did not mount within 20 s');
}

try {
  step('Start a local S3 server', 's3rver, a real S3 implementation, on 127.0.0.1: no AWS account needed.');
  server = await startS3Server({ buckets: ['demo'] });
  console.log(`   S3 endpoint ${server.endpoint}, bucket "demo", objects kept in ${server.dir}`);
  const s3 = [`--baseURL=${server.endpoint}/`, `--accessId=${server.accessKeyId}`, `--accessKey=${server.secretAccessKey}`];

  step('Mount the bucket as one 256 MiB file', 'Each 64 KiB block of the file is one S3 object; blocks never written cost nothing.');
  let { exited } = await mountS3backer([...s3, '--blockSize=64k', '--size=256m', 'demo', mnt]);
  show(`ls -l ${mnt}`);
  console.log((await run('ls', ['-l', mnt])).stdout.replace(/^/gm, '   '));

  step('Make an ext4 filesystem on the file', 'Any filesystem works: the file behaves like a disk.');
  show(`mkfs.ext4 -q ${mnt}/file`);
  await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', join(mnt, 'file')]);

  step('Loop-mount it and write files', 'The kernel turns file system writes into block writes; s3backer turns them into PUTs.');
  show(`mount -o loop ${mnt}/file ${data}`);
  await run('mount', ['-o', 'loop', join(mnt, 'file'), data]);
  loopMounted = true;
  const payload = randomBytes(16 * 2 ** 20);
  await writeFile(join(data, 'random-16MiB.bin'), payload);
  await writeFile(join(data, 'hello.txt'), 'Hello from a disk that lives in S3!\n');
  console.log(`   wrote random-16MiB.bin (sha256 ${sha(payload)}…) and hello.txt`);

  step('Read them back', 'Straight through the loop device and s3backer.');
  await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']).catch(() => {});
  console.log(`   hello.txt: ${(await readFile(join(data, 'hello.txt'), 'utf8')).trim()}`);
  console.log(`   random-16MiB.bin sha256 ${sha(await readFile(join(data, 'random-16MiB.bin')))}…`);

  step('Unmount the filesystem and look at the statistics', `The stats file beside the backed file counts requests with upstream's names.`);
  show(`umount ${data}; cat ${mnt}/stats`);
  await run('umount', [data]);
  loopMounted = false;
  console.log((await readFile(join(mnt, 'stats'), 'utf8')).replace(/^/gm, '   ').trimEnd());

  step('Unmount s3backer', 'umount returns once every block is in S3 and the "mounted" flag is cleared.');
  show(`umount ${mnt}`);
  await run('umount', [mnt]);
  console.log(`   s3backer exited with code ${await exited}`);
  const keys = await listKeys(server, 'demo');
  console.log(`   the bucket holds ${keys.length} objects of 4096 possible blocks: zero blocks are never stored`);

  step('Mount again, in a new process', 'No --size: block 0 carries the geometry, so it is detected.');
  ({ exited } = await mountS3backer([...s3, 'demo', mnt]));
  show(`e2fsck -fn ${mnt}/file`);
  const fsck = await run('e2fsck', ['-fn', join(mnt, 'file')]);
  console.log(`   ${fsck.stdout.trim().split('\n').pop()}`);
  await run('mount', ['-o', 'loop,ro', join(mnt, 'file'), data]);
  loopMounted = true;
  const again = await readFile(join(data, 'random-16MiB.bin'));
  console.log(`   random-16MiB.bin sha256 ${sha(again)}… ${again.equals(payload) ? 'identical' : 'DIFFERENT!'}`);
  await run('umount', [data]);
  loopMounted = false;
  await run('umount', [mnt]);
  await exited;
  if (!again.equals(payload)) throw new Error('data read back differs');

  console.log('\nDone. To use a real bucket: s3backer --size=100g mybucket /mnt/s3 (see README).');
} catch (err) {
  console.error(`\ndemo failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  if (loopMounted) await run('umount', [data]).catch(() => {});
  await run('umount', [mnt]).catch(() => {});
  child?.kill('SIGTERM');
  await server?.stop();
  await rmdir(mnt).catch(() => {});
  await rmdir(data).catch(() => {});
  await rmdir(root).catch(() => {});
}
