// Whether a directory is a FUSE mount point, from the mount table: checked before mounting (a
// stale or live mount there is refused) and before unmounting (one already gone needs no unmount).

import { readFile } from 'node:fs/promises';

/** Undoes the octal escapes the kernel uses for spaces and the like in mount points. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export async function isFuseMounted(mountpoint: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const point = left.split(' ')[4];
    const fstype = right.split(' ')[0] ?? '';
    if (point !== undefined && unescapeMountPath(point) === mountpoint && fstype.startsWith('fuse')) return true;
  }
  return false;
}
