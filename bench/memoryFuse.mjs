#!/usr/bin/env node
// The FUSE ceiling: one file served through fuse-native with the options s3backer uses
// (big_writes), its bytes kept in a file on /dev/shm so they outlive a remount. No blocks, no
// cache, no S3: what the kernel, libfuse 2 and the binding allow a Node process. bench/run.mjs
// mounts it like a tool; it takes s3backer's `--size=` and ignores the other flags.
//   node bench/memoryFuse.mjs [-f] [--size=1g] [--store=/dev/shm/file] ... mountpoint
import Fuse from 'fuse-native';
import { existsSync, openSync, readSync, writeSync, ftruncateSync, fsyncSync, readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const mountpoint = args[args.length - 1];
const opt = (name, dflt) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const units = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const sizeText = opt('size', '1g').toLowerCase();
const size = Number.parseInt(sizeText, 10) * (units[sizeText.slice(-1)] ?? 1);
const store = opt('store', `/dev/shm/s3backer-bench-ceiling-${size}`);
const fd = openSync(store, existsSync(store) ? 'r+' : 'w+'); // not append: pwrite must land at its offset
ftruncateSync(fd, size);

const now = new Date();
const attr = (mode, len) => ({ mode, size: len, uid: 0, gid: 0, nlink: 1, atime: now, mtime: now, ctime: now });
const ops = {
  getattr: (path, cb) => {
    if (path === '/') return cb(0, attr(0o040755, 4096));
    if (path === '/file') return cb(0, attr(0o100600, size));
    return cb(Fuse.ENOENT);
  },
  readdir: (path, cb) => (path === '/' ? cb(0, ['file']) : cb(Fuse.ENOENT)),
  open: (path, flags, cb) => cb(path === '/file' ? 0 : Fuse.ENOENT, 42),
  release: (path, fd, cb) => cb(0),
  read: (path, _fd, buf, len, pos, cb) => cb(readSync(fd, buf, 0, Math.max(0, Math.min(len, size - pos)), pos)),
  write: (path, _fd, buf, len, pos, cb) => cb(writeSync(fd, buf, 0, len, pos)),
  fsync: (path, _d, _fd, cb) => {
    fsyncSync(fd);
    cb(0);
  },
  flush: (path, _fd, cb) => cb(0),
  truncate: (path, len, cb) => cb(0),
  ftruncate: (path, _fd, len, cb) => cb(0),
};
const fuse = new Fuse(mountpoint, ops, { timeout: false, fsname: 'ceiling,big_writes' });
fuse.mount((err) => {
  if (err) {
    console.error(`memoryFuse: ${err.message}`);
    process.exit(1);
  }
  // fusermount -u ends the process, as it does s3backer's.
  setInterval(() => {
    if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountpoint} `)) process.exit(0);
  }, 100);
});
process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
