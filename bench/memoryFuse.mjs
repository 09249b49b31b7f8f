#!/usr/bin/env node
// The FUSE ceiling: one file whose bytes are kept in a file on /dev/shm (so they outlive a
// remount); no blocks, no cache, no S3: what FUSE and the binding allow a Node process.
//   --binding=native       our addon's session (fuser, FUSE 3 protocol, up to 1 MiB requests),
//                          mounted with the options s3backer mounts with (sessionOptions());
//   --binding=native-map   the same session with the file's bytes in cache slots (a slot file on
//                          /dev/shm) behind a block map where every block is readable and
//                          writable: reads and writes are answered in Rust, as s3backer's cached
//                          blocks are; JS only takes the session's reports;
//   --binding=fuse-native  fuse-native 2.2.6 (libfuse 2, 128 KiB requests with big_writes), the
//                          binding s3backer used before: the baseline (bench/fuseNative.mjs);
//   --binding=none         no FUSE at all: the file on tmpfs (in a directory beside --store),
//                          bind-mounted at the mountpoint. What the kernel, the loop device and
//                          ext4 cost by themselves: the bound of every binding's figures.
// bench/run.mjs mounts it like a tool; it takes s3backer's `--size=`, `--blockSize=` and
// `--metricsPort=` (the request-size histogram only, in s3backer's format) and ignores the rest.
//   node bench/memoryFuse.mjs [--binding=native] [--size=1g] [--store=/dev/shm/file] ... mountpoint
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { constants } from 'node:os';
import { existsSync, openSync, readSync, writeSync, ftruncateSync, fsyncSync, readFileSync, mkdirSync, closeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { loadFuseNative } from './fuseNative.mjs';

const require = createRequire(import.meta.url);
const { Histogram, REQUEST_SIZE_BUCKETS } = require('../dist/stats/latency.js');
const { renderPrometheus } = require('../dist/stats/prometheus.js');

const args = process.argv.slice(2);
const mountpoint = args[args.length - 1];
const opt = (name, dflt) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const units = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const bytes = (text) => Number.parseInt(text, 10) * (units[text.toLowerCase().slice(-1)] ?? 1);
const size = bytes(opt('size', '1g'));
const blockSize = bytes(opt('blockSize', '256k'));
const binding = opt('binding', 'native');
const store = opt('store', `/dev/shm/s3backer-bench-ceiling-${size}`);
const fd = binding === 'native-map' || binding === 'none' ? -1 : openSync(store, existsSync(store) ? 'r+' : 'w+'); // not append: pwrite must land at its offset
if (fd >= 0) ftruncateSync(fd, size);

const sizes = { read: new Histogram(REQUEST_SIZE_BUCKETS), write: new Histogram(REQUEST_SIZE_BUCKETS) };
const sessionSizes = { read: new Histogram(REQUEST_SIZE_BUCKETS), write: new Histogram(REQUEST_SIZE_BUCKETS) };
const metricsPort = opt('metricsPort');
if (metricsPort !== undefined) {
  const series = ['read', 'write'].flatMap((op) => [
    { labels: { operation: op, answered_in: 'stack' }, histogram: sizes[op] },
    { labels: { operation: op, answered_in: 'session' }, histogram: sessionSizes[op] },
  ]);
  const histograms = [{ name: 'fuse_request_bytes', help: 'Sizes of FUSE reads and writes, as the kernel sent them', series }];
  createServer((_req, res) => res.end(renderPrometheus({ stats: [], histograms })))
    .listen(Number(metricsPort), '127.0.0.1')
    .unref();
}

const read = (buf, len, pos) => {
  sizes.read.observe(len);
  return readSync(fd, buf, 0, Math.max(0, Math.min(len, size - pos)), pos);
};
const write = (buf, len, pos) => {
  sizes.write.observe(len);
  return writeSync(fd, buf, 0, len, pos);
};

if (binding === 'native' || binding === 'native-map') {
  const { FuseSessions } = require('../dist/native/addon.js');
  const { sessionOptions } = require('../dist/fuse/fuseSession.js');
  const options = sessionOptions({
    mountpoint,
    filename: 'file',
    statsFilename: 'stats',
    fileMode: 0o600,
    blockSize,
    numBlocks: size / blockSize,
    readOnly: false,
    directIO: false,
    description: 'ceiling',
    fuseOptions: [],
  });
  // replyData copies, so one buffer serves every read.
  let buf = Buffer.alloc(1024 * 1024);
  const zeros = Buffer.alloc(1024 * 1024);
  const { map, slots } = binding === 'native-map' ? memoryMap() : {};
  const session = FuseSessions.mount(
    options,
    (r) => {
      switch (r.op) {
        case 'hits': {
          // The session answered these itself: only their sizes are kept.
          const { reads, writes } = session.takeHits();
          for (let i = 0; i < reads.length; i += 2) sessionSizes.read.observe(reads[i]);
          for (let i = 0; i < writes.length; i += 2) sessionSizes.write.observe(writes[i]);
          map?.takeWritten();
          return;
        }
        case 'read':
        case 'write':
          // Every block is readable and writable in the map: none should come here.
          if (map) {
            console.error(`memoryFuse: a ${r.op} reached JS`);
            return session.reply(r.id, -constants.errno.EIO);
          }
          break;
        case 'zero':
          if (slots) {
            for (let at = r.offset; at < r.offset + r.length;) {
              const within = at % blockSize;
              const n = Math.min(blockSize - within, r.offset + r.length - at);
              slots.writePart(Math.floor(at / blockSize), within, zeros.subarray(0, n));
              at += n;
            }
            return session.reply(r.id, 0);
          }
          break;
      }
      switch (r.op) {
        case 'read':
          if (buf.length < r.length) buf = Buffer.alloc(r.length);
          return session.replyData(r.id, buf.subarray(0, read(buf, r.length, r.offset)));
        case 'write':
          return session.reply(r.id, write(r.data, r.data.length, r.offset));
        case 'zero':
          for (let done = 0; done < r.length;) done += writeSync(fd, zeros, 0, Math.min(zeros.length, r.length - done), r.offset + done);
          return session.reply(r.id, 0);
        case 'stats':
          return session.replyStats(r.id, Buffer.from('memory FUSE file: no stats\n'));
        case 'flush':
        case 'resetStats':
          return session.reply(r.id, 0);
        default:
          return session.reply(r.id, -constants.errno.ENOSYS);
      }
    },
    (error) => {
      if (error !== null) console.error(`memoryFuse: ${error}`);
      process.exit(error === null ? 0 : 1);
    },
    map ?? null,
  );
  // The session's callbacks do not hold the event loop: this does, until the unmount ends us.
  setInterval(() => {}, 2 ** 30);
  process.on('SIGTERM', () => session.unmount(true));
} else if (binding === 'fuse-native') {
  const Fuse = loadFuseNative();
  if (Fuse instanceof Error) {
    console.error(`memoryFuse: ${Fuse.message}`);
    process.exit(1);
  }
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
    read: (path, _fd, buf, len, pos, cb) => cb(read(buf, len, pos)),
    write: (path, _fd, buf, len, pos, cb) => cb(write(buf, len, pos)),
    fsync: (path, _d, _fd, cb) => {
      fsyncSync(fd);
      cb(0);
    },
    flush: (path, _fd, cb) => cb(0),
    truncate: (path, len, cb) => cb(0),
    ftruncate: (path, _fd, len, cb) => cb(0),
  };
  // big_writes (128 KiB writes, else 4 KiB) rides in fsname: fuse-native joins options unescaped.
  const fuse = new Fuse(mountpoint, ops, { timeout: false, fsname: 'ceiling,big_writes' });
  fuse.mount((err) => {
    if (err) {
      console.error(`memoryFuse: ${err.message}`);
      process.exit(1);
    }
    // An unmount from outside ends the process, as it does s3backer's; polled often, since the
    // bench times a write until the exit.
    setInterval(() => {
      if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountpoint} `)) process.exit(0);
    }, 10);
  });
  process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
} else if (binding === 'none') {
  const dir = `${store}.d`;
  mkdirSync(dir, { recursive: true });
  const file = openSync(`${dir}/file`, existsSync(`${dir}/file`) ? 'r+' : 'w+');
  ftruncateSync(file, size);
  closeSync(file);
  execFileSync('mount', ['--bind', dir, mountpoint]);
  // Ends once unmounted from outside, as the FUSE bindings do.
  setInterval(() => {
    if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountpoint} `)) process.exit(0);
  }, 10);
  process.on('SIGTERM', () => execFileSync('umount', [mountpoint]));
} else {
  console.error(`memoryFuse: --binding=${binding}: native, native-map, fuse-native or none`);
  process.exit(2);
}

/**
 * The file as cache slots, block n in slot n, in a slot file at --store (so it outlives a remount),
 * every block published readable and writable, and never a limit on dirty blocks.
 */
function memoryMap() {
  const { SlotStores, BlockMaps } = require('../dist/native/addon.js');
  const numBlocks = size / blockSize;
  const slots = existsSync(store) ? SlotStores.openFile(store) : SlotStores.createFile(store, blockSize, numBlocks, 1);
  // Every page touched for writing before mounting, as s3backer maps its cache memory in at
  // mount: the file's mapping is new in each process, and its faults are not the session's cost.
  const page = Buffer.alloc(blockSize);
  for (let b = 0; b < numBlocks; b++) {
    slots.readInto(b, 0, page);
    slots.write(b, page);
  }
  const map = new BlockMaps(slots);
  map.allowWrites(numBlocks);
  for (let b = 0; b < numBlocks; b++) {
    map.claim(b, b, false);
    map.publish(b, true);
  }
  return { map, slots };
}
