// FUSE `-o` options we pass to libfuse. An option libfuse rejects fails the mount but leaves it
// mounted, so anything outside this list is refused before mounting.

import { ConfigError } from './config';

const FUSE_FLAGS = new Set([
  'allow_other', 'allow_root', 'auto_unmount', 'nonempty', 'default_permissions', 'large_read',
  'blkdev', 'noforget', 'nopath', 'intr', 'async_read', 'sync_read', 'atomic_o_trunc', 'big_writes',
  'no_remote_lock', 'kernel_cache', 'auto_cache', 'direct_io', 'use_ino', 'readdir_ino', 'hard_remove',
  'debug', 'ro', 'rw', 'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'async', 'sync', 'dirsync',
  'atime', 'noatime', 'relatime', 'norelatime', 'strictatime',
]);

const FUSE_VALUED = new Set([
  'fsname', 'subtype', 'max_read', 'blksize', 'uid', 'gid', 'umask', 'entry_timeout', 'negative_timeout',
  'attr_timeout', 'ac_attr_timeout', 'remember', 'intr_signal', 'modules', 'max_write', 'max_readahead',
  'max_background', 'congestion_threshold',
]);

/** Options fstab and mount(8) hand to helpers that mean nothing to FUSE itself. */
const MOUNT_ONLY = new Set(['auto', 'noauto', 'user', 'nouser', 'users', 'owner', 'nofail', '_netdev', 'defaults']);

/** Checks one `-o` item; returns it to pass on, undefined to drop, or throws a clear error. */
export function checkFuseOption(item: string): string | undefined {
  const eq = item.indexOf('=');
  const name = eq < 0 ? item : item.slice(0, eq);
  if (MOUNT_ONLY.has(name) || name.startsWith('x-') || name.startsWith('comment=')) return undefined;
  if (!/^[A-Za-z0-9_.:/@+-]*$/.test(eq < 0 ? '' : item.slice(eq + 1))) {
    throw new ConfigError(`FUSE option "${item}" has characters that cannot be passed on`);
  }
  if (eq < 0 && FUSE_FLAGS.has(name)) return item;
  if (eq >= 0 && FUSE_VALUED.has(name)) return item;
  throw new ConfigError(`unknown FUSE option "-o ${item}"`);
}
