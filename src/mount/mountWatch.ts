// Notices when our FUSE mount goes away (fusermount -u, umount): fuse-native has no destroy
// callback, so the mount table is polled (often: the unmount waits on it, and a read costs little).

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

/** Calls onGone once the mount has disappeared; returns a function that stops watching. */
export function watchMount(mountpoint: string, onGone: () => void, intervalMs = 50): () => void {
  let stopped = false;
  const timer = setInterval(() => {
    isFuseMounted(mountpoint).then(
      (mounted) => {
        if (!mounted && !stopped) {
          stopped = true;
          clearInterval(timer);
          onGone();
        }
      },
      () => {},
    );
  }, intervalMs);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
