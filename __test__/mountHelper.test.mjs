// mount(8) integration: `mount -t s3backer` and fstab lines through the mount.s3backer helper,
// and `fuse.s3backer` lines through mount.fuse, each mounting a real disk and unmounting it with
// umount, with the data in the store afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { writeFile, readFile, readdir, rm, lstat, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { workdir, isMounted, run, REPO } from './helpers/ours.mjs';

const require = createRequire(import.meta.url);
const { translate } = require('../dist/cli/mountHelper.js');
const HELPER = '/sbin/mount.s3backer';
// mount.fuse runs `s3backer` from PATH=/usr/local/sbin:/usr/local/bin:...: ours goes first for the
// test (Debian's stays in /usr/bin), as `npm i -g` into /usr/local puts it.
const FUSE_PROGRAM = '/usr/local/sbin/s3backer';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('mount(8) helper arguments become s3backer arguments', () => {
  assert.deepEqual(translate(['b', '/m', '-o', 'rw,size=1g', '-t', 's3backer']).argv, ['-o', 'rw,size=1g', 'b', '/m']);
  assert.deepEqual(translate(['-snv', 'b', '/m']).argv, ['b', '/m'], "mount's -s, -n, -v are not s3backer's");
  assert.deepEqual(translate(['-r', 'b', '/m']).argv, ['-o', 'ro', 'b', '/m']);
  assert.equal(translate(['b', '/m', '-f', '-o', 'size=1g']).argv, undefined, '-f is a fake mount: nothing runs');
  assert.throws(() => translate(['b']), /usage: mount.s3backer/);
  assert.throws(() => translate(['b', '/m', '-N', '1']), /namespaces/);
  assert.throws(() => translate(['b', '/m', '--size=1g']), /unknown option --size=1g/);
});

/** Puts an executable script at `path` that runs one of our dist scripts; returns its removal. */
async function install(path, script) {
  const existing = await lstat(path).catch(() => undefined);
  if (existing) throw new Error(`${path} exists already: not replacing it`);
  await writeFile(path, `#!/bin/sh\nexec "${process.execPath}" "${join(REPO, 'dist', 'cli', script)}" "$@"\n`);
  await chmod(path, 0o755);
  return () => rm(path, { force: true });
}

/** Writes through the mounted file, unmounts with umount(8), and checks the store got the blocks. */
async function useAndUnmount(dirs) {
  assert.ok(await isMounted(dirs.mnt), 'mount(8) returned with the disk mounted');
  assert.ok((await readdir(dirs.store)).includes('s3backer-mounted'), 'the bucket is marked mounted');
  await writeFile(join(dirs.mnt, 'file'), Buffer.alloc(2 * 4096, 0x42), { flag: 'r+' });
  await run('umount', [dirs.mnt]);
  // umount returns once the kernel lets go; the daemon then flushes and exits.
  for (let i = 0; i < 100 && (await readdir(dirs.store)).includes('s3backer-mounted'); i++) await sleep(100);
  const files = await readdir(dirs.store);
  assert.ok(files.includes('00000000') && files.includes('00000001'), `written blocks are in the store: ${files}`);
  assert.ok(!files.includes('s3backer-mounted'), 'the mounted flag is cleared');
  assert.ok((await readFile(join(dirs.store, '00000001'))).equals(Buffer.alloc(4096, 0x42)));
  assert.equal(await isMounted(dirs.mnt), false);
}

test('mount -t s3backer and an fstab line of type s3backer mount through mount.s3backer', async () => {
  const dirs = await workdir('mount-helper');
  const remove = await install(HELPER, 'mountHelper.js');
  try {
    await run('mount', ['-t', 's3backer', dirs.store, dirs.mnt, '-o', 'test,blockSize=4k,size=1m,noauto,nofail']);
    await useAndUnmount(dirs);

    const fstab = join(dirs.root, 'fstab');
    await writeFile(fstab, `# s3backer\n${dirs.store} ${dirs.mnt} s3backer noauto,_netdev,test,blockSize=4k,size=1m,readAhead=2 0 0\n`);
    await run('mount', ['-T', fstab, dirs.mnt]);
    await useAndUnmount(dirs);

    // A bad option fails mount(8) with s3backer's message, and nothing is left mounted.
    const failed = await run('mount', ['-t', 's3backer', dirs.store, dirs.mnt, '-o', 'test,blockSize=4k,size=1m,noSuchFlag=1']).catch(
      (e) => e,
    );
    assert.equal(failed.code, 32, "mount failure (mount(8)'s status 32)");
    assert.match(String(failed.stderr), /unknown FUSE option "-o noSuchFlag=1"/);
    assert.equal(await isMounted(dirs.mnt), false);
    // The helper's own statuses: 32 when the mount fails (here: no such directory), 1 for usage.
    const missing = await run(HELPER, [dirs.store, join(dirs.root, 'nowhere'), '-o', 'test,blockSize=4k,size=1m']).catch((e) => e);
    assert.equal(missing.code, 32, String(missing.stderr));
    assert.match(String(missing.stderr), /does not exist/);
    const usage = await run(HELPER, [dirs.store]).catch((e) => e);
    assert.equal(usage.code, 1);
    assert.match(String(usage.stderr), /usage: mount.s3backer/);
  } finally {
    await remove();
    await dirs.cleanup();
  }
});

test('an fstab line of type fuse.s3backer mounts through mount.fuse', async () => {
  const dirs = await workdir('mount-fuse');
  const remove = await install(FUSE_PROGRAM, 'main.js');
  try {
    const fstab = join(dirs.root, 'fstab');
    await writeFile(fstab, `${dirs.store} ${dirs.mnt} fuse.s3backer noauto,test,blockSize=4k,size=1m 0 0\n`);
    await run('mount', ['-T', fstab, dirs.mnt]);
    await useAndUnmount(dirs);
  } finally {
    await remove();
    await dirs.cleanup();
  }
});

test('a systemd mount unit: systemd-analyze accepts it, and the mount it describes works', async (t) => {
  const analyze = await run('systemd-analyze', ['--version']).catch(() => undefined);
  if (!analyze) return t.skip('systemd-analyze is not installed');
  const dirs = await workdir('mount-unit');
  const remove = await install(HELPER, 'mountHelper.js');
  try {
    const name = (await run('systemd-escape', ['--path', '--suffix=mount', dirs.mnt])).stdout.trim();
    const unit = join(dirs.root, name);
    const options = '_netdev,test,blockSize=4k,size=1m';
    await writeFile(
      unit,
      `[Unit]\nDescription=s3backer disk\nAfter=network-online.target\nWants=network-online.target\n\n` +
        `[Mount]\nWhat=${dirs.store}\nWhere=${dirs.mnt}\nType=s3backer\nOptions=${options}\n\n[Install]\nWantedBy=multi-user.target\n`,
    );
    await run('systemd-analyze', ['verify', unit]);
    // What systemd runs for it: mount -t Type What Where -o Options.
    await run('mount', ['-t', 's3backer', dirs.store, dirs.mnt, '-o', options]);
    await useAndUnmount(dirs);
  } finally {
    await remove();
    await dirs.cleanup();
  }
});
