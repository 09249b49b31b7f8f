// The part of fuse-native 2.2.6 we use (it ships no typings). Callbacks take a negative errno.

declare module 'fuse-native' {
  export interface Stat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink?: number;
    blksize?: number;
    blocks?: number;
    atime: Date;
    mtime: Date;
    ctime: Date;
  }

  export interface Statfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  type Cb = (err: number) => void;

  export interface Operations {
    init?(cb: Cb): void;
    getattr?(path: string, cb: (err: number, stat?: Stat) => void): void;
    readdir?(path: string, cb: (err: number, names?: string[]) => void): void;
    statfs?(path: string, cb: (err: number, statfs?: Statfs) => void): void;
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    release?(path: string, fd: number, cb: Cb): void;
    /** cb(bytesRead) or cb(negative errno). */
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
    /** cb(bytesWritten) or cb(negative errno). */
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
    flush?(path: string, fd: number, cb: Cb): void;
    fsync?(path: string, datasync: boolean, fd: number, cb: Cb): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    unlink?(path: string, cb: Cb): void;
    utimens?(path: string, atime: number, mtime: number, cb: Cb): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    access?(path: string, mode: number, cb: Cb): void;
  }

  export interface FuseOptions {
    timeout?: number | false;
    force?: boolean;
    mkdir?: boolean;
    debug?: boolean;
    allowOther?: boolean;
    fsname?: string;
    uid?: number;
    gid?: number;
  }

  class Fuse {
    constructor(mnt: string, ops: Operations, opts?: FuseOptions);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static EPERM: number;
    static ENOENT: number;
    static EIO: number;
    static EBADF: number;
    static EACCES: number;
    static EINVAL: number;
    static EROFS: number;
    static EFBIG: number;
    static ENOSPC: number;
    static EISDIR: number;
  }
  export = Fuse;
}
