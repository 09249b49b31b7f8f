// The kernel reads a FUSE file ahead by its mount's read-ahead (the mount's backing device's
// read_ahead_kb under /sys/class/bdi), 128 KiB unless raised, whatever the session offers: a
// loop device reading the file through its page cache then asks for 128 KiB at a time, eight
// requests where the session takes 1 MiB in one. Raised once mounted, unless -o max_readahead
// asked for less; only root may (others keep the kernel's 128 KiB).

import { writeFile } from 'node:fs/promises';
import { fuseMountDevice } from './mountTable';

/** The session's largest request (FUSE's max_pages, 256 pages). */
export const KERNEL_READ_AHEAD_KB = 1024;

/** Sets the read-ahead of the FUSE mount at `mountpoint`; throws (ENOENT, EACCES) where it cannot. */
export async function setKernelReadAhead(mountpoint: string, kb: number): Promise<void> {
  const device = await fuseMountDevice(mountpoint);
  if (device === undefined) throw new Error(`no FUSE mount at ${mountpoint} in the mount table`);
  await writeFile(`/sys/class/bdi/${device}/read_ahead_kb`, `${kb}\n`);
}
