// Whether a directory is a FUSE mount point, from the mount table: checked before mounting (a
// stale or live mount there is refused) and before unmounting (one already gone needs no unmount).
// And which device number a mount has (its read-ahead is set under /sys/class/bdi by it).

import { readFile } from 'node:fs/promises';

/** Undoes the octal escapes the kernel uses for spaces and the like in mount points. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The FUSE mount at `mountpoint` from the mount table (the last, if several): its device number as MAJ:MIN. */
async function fuseMount(mountpoint: string): Promise<{ device: string } | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let found: { device: string } | undefined;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const point = fields[4];
    const fstype = right.split(' ')[0] ?? '';
    if (point !== undefined && unescapeMountPath(point) === mountpoint && fstype.startsWith('fuse')) found = { device: fields[2] ?? '' };
  }
  return found;
}

export async function isFuseMounted(mountpoint: string): Promise<boolean> {
  return (await fuseMount(mountpoint)) !== undefined;
}

/** MAJ:MIN of the FUSE mount at `mountpoint`, if there is one. */
export async function fuseMountDevice(mountpoint: string): Promise<string | undefined> {
  return (await fuseMount(mountpoint))?.device;
}
