// The FUSE front end: a root directory holding the backed file and the statistics file.
// fuse-native hands us buffers that are detached after the callback, so every byte is copied
// in or out before calling back.

import Fuse = require('fuse-native');
import type { PartialBlockLayer } from '../layers/partialBlock';
import { errnoFor } from './errno';
import type { Logger } from '../util/log';
import type { FuseLatencies, Histogram } from '../stats/latency';

export interface FrontEndOptions {
  readonly filename: string;
  readonly statsFilename: string;
  readonly fileMode: number;
  readonly readOnly: boolean;
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly uid: number;
  readonly gid: number;
}

export interface FrontEndHooks {
  renderStats(): string;
  resetStats(): void;
  /** Where the durations of reads and writes of the backed file are counted. */
  readonly latency?: FuseLatencies | undefined;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const O_ACCMODE = 3;
const O_RDONLY = 0;

export function makeOperations(
  data: PartialBlockLayer,
  options: FrontEndOptions,
  hooks: FrontEndHooks,
  log: Logger,
): Fuse.Operations {
  const mountTime = new Date();
  const filePath = `/${options.filename}`;
  const statsPath = `/${options.statsFilename}`;
  const fileSize = options.blockSize * options.numBlocks;
  // Each open of the stats file reads one consistent snapshot; getattr reports its size.
  const statsSnapshots = new Map<number, Buffer>();
  let latestStats = Buffer.alloc(0);
  let nextFd = 10;
  // Descriptors open for writing: only their close (FUSE flush) waits for dirty data; a reader's
  // close has nothing of its own to store.
  const writers = new Set<number>();

  const renderStats = (): Buffer => (latestStats = Buffer.from(hooks.renderStats()));
  const statFor = (mode: number, size: number) => ({
    mode,
    size,
    uid: options.uid,
    gid: options.gid,
    nlink: 1,
    blksize: options.blockSize,
    blocks: Math.ceil(size / 512),
    atime: mountTime,
    mtime: mountTime,
    ctime: mountTime,
  });
  const fail = (op: string, err: unknown): number => {
    const errno = errnoFor(err);
    log.error(`${op}: ${(err as Error).message ?? String(err)}`);
    return errno;
  };
  /** Calls back with the byte count or the errno; times the request when metrics are on. */
  const answer = (what: string, work: () => Promise<number>, timer: Histogram | undefined, cb: (result: number) => void): void => {
    const started = timer === undefined ? 0 : performance.now();
    work().then(
      (n) => {
        timer?.observeSince(started);
        cb(n);
      },
      (err: unknown) => {
        timer?.observeSince(started);
        cb(fail(what, err));
      },
    );
  };

  return {
    getattr(path, cb) {
      if (path === '/') return cb(0, { ...statFor(S_IFDIR | 0o755, 4096), nlink: 2 });
      if (path === filePath) return cb(0, statFor(S_IFREG | options.fileMode, fileSize));
      if (path === statsPath) return cb(0, statFor(S_IFREG | (options.fileMode & 0o444), renderStats().length));
      return cb(Fuse.ENOENT);
    },
    readdir(path, cb) {
      if (path !== '/') return cb(Fuse.ENOENT);
      return cb(0, [options.filename, options.statsFilename]);
    },
    statfs(_path, cb) {
      const clamp = (n: number): number => Math.min(n, 0xffffffff);
      return cb(0, {
        bsize: options.blockSize,
        frsize: options.blockSize,
        blocks: clamp(options.numBlocks),
        bfree: 0,
        bavail: 0,
        files: 2,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: 0,
        namemax: 255,
      });
    },
    open(path, flags, cb) {
      const fd = nextFd++;
      if (path === statsPath) {
        if ((flags & O_ACCMODE) !== O_RDONLY) return cb(Fuse.EACCES);
        statsSnapshots.set(fd, latestStats.length > 0 ? latestStats : renderStats());
        return cb(0, fd);
      }
      if (path !== filePath) return cb(Fuse.ENOENT);
      if (options.readOnly && (flags & O_ACCMODE) !== O_RDONLY) return cb(Fuse.EROFS);
      if ((flags & O_ACCMODE) !== O_RDONLY) writers.add(fd);
      return cb(0, fd);
    },
    release(_path, fd, cb) {
      statsSnapshots.delete(fd);
      writers.delete(fd);
      return cb(0);
    },
    read(path, fd, buf, len, pos, cb) {
      if (path === statsPath) {
        const snap = statsSnapshots.get(fd) ?? renderStats();
        const n = pos >= snap.length ? 0 : snap.copy(buf, 0, pos, Math.min(snap.length, pos + len));
        return cb(n);
      }
      if (path !== filePath) return cb(Fuse.ENOENT);
      answer(`read of ${len} bytes at ${pos}`, () => data.read(pos, buf.subarray(0, len)), hooks.latency?.read, cb);
    },
    write(path, _fd, buf, len, pos, cb) {
      if (path !== filePath) return cb(Fuse.EACCES);
      if (options.readOnly) return cb(Fuse.EROFS);
      if (pos + len > fileSize) return cb(pos >= fileSize ? Fuse.EFBIG : Fuse.ENOSPC);
      answer(`write of ${len} bytes at ${pos}`, () => data.write(pos, buf.subarray(0, len)), hooks.latency?.write, cb);
    },
    flush(path, fd, cb) {
      if (path !== filePath || options.readOnly || !writers.has(fd)) return cb(0);
      data.flush().then(() => cb(0), (err: unknown) => cb(fail('flush', err)));
    },
    fsync(path, _datasync, _fd, cb) {
      if (path !== filePath || options.readOnly) return cb(0);
      data.flush().then(() => cb(0), (err: unknown) => cb(fail('fsync', err)));
    },
    // As upstream: a truncate succeeds and changes nothing (the file's size is fixed), so that
    // restoring an image with dd or cp, which open it with O_TRUNC, works.
    truncate(path, _size, cb) {
      return cb(path === filePath ? 0 : Fuse.EACCES);
    },
    ftruncate(path, _fd, _size, cb) {
      return cb(path === filePath ? 0 : Fuse.EACCES);
    },
    unlink(path, cb) {
      // Upstream's convention: removing the stats file resets the counters.
      if (path === statsPath) {
        hooks.resetStats();
        return cb(0);
      }
      return cb(path === filePath ? Fuse.EPERM : Fuse.ENOENT);
    },
    utimens(path, _atime, _mtime, cb) {
      return cb(path === '/' || path === filePath || path === statsPath ? 0 : Fuse.ENOENT);
    },
  };
}

