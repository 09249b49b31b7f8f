import { ConfigError } from '../errors';
// FUSE `-o` options, as libfuse 3 and upstream take them, and what each does to our session.
// Everything is checked before mounting; anything outside these tables is refused.

/** How the session is set up, before and after the `-o` options have had their say. */
export interface FuseTuning {
  /** Who may use the mount: its owner, also root (allow_root), or every user (allow_other). */
  access: 'owner' | 'root' | 'other';
  fsname: string | undefined;
  subtype: string;
  uid: number;
  gid: number;
  /** umask=: replaces the permission bits of both files (libfuse's meaning). */
  umask: number | undefined;
  attrTimeoutMs: number;
  entryTimeoutMs: number;
  maxWrite: number;
  maxReadahead: number | undefined;
  maxBackground: number | undefined;
  congestionThreshold: number | undefined;
  asyncRead: boolean;
  directIO: boolean;
  keepCache: boolean;
  /** Kernel mount flags and options (ro, nodev, max_read=N, ...). */
  mountOptions: string[];
}

type Effect = (t: FuseTuning, value: string) => void;

/** Kernel flags that undo each other: the later one given wins. */
const OPPOSITES = new Map(
  [
    ['ro', 'rw'],
    ['dev', 'nodev'],
    ['suid', 'nosuid'],
    ['exec', 'noexec'],
    ['atime', 'noatime'],
    ['sync', 'async'],
  ].flatMap(([a, b]) => [
    [a, b],
    [b, a],
  ]) as Array<[string, string]>,
);

const kernel: Effect = (t, value) => {
  const opposite = OPPOSITES.get(value);
  t.mountOptions = t.mountOptions.filter((o) => o !== opposite && o !== value);
  t.mountOptions.push(value);
};
/** Options of libfuse 2 or of libfuse's internals that change nothing in a session of ours. */
const noEffect: Effect = () => {};

const FLAGS: Record<string, Effect> = {
  allow_other: (t) => void (t.access = 'other'),
  allow_root: (t) => void (t.access = 'root'),
  direct_io: (t) => void (t.directIO = true),
  // Only this mount changes the file, so a kept page cache is always current.
  kernel_cache: (t) => void (t.keepCache = true),
  auto_cache: (t) => void (t.keepCache = true),
  async_read: (t) => void (t.asyncRead = true),
  sync_read: (t) => void (t.asyncRead = false),
  ...Object.fromEntries(
    ['auto_unmount', 'ro', 'rw', 'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'atime', 'noatime', 'sync', 'async', 'dirsync'].map(
      (name) => [name, (t: FuseTuning) => kernel(t, name)],
    ),
  ),
  // Always on (default_permissions), always so in FUSE 3 (big_writes, nonempty, atomic_o_trunc),
  // or about inode numbers, paths and times this two-file system does not have.
  ...Object.fromEntries(
    [
      'default_permissions',
      'big_writes',
      'large_read',
      'nonempty',
      'atomic_o_trunc',
      'use_ino',
      'readdir_ino',
      'hard_remove',
      'noforget',
      'nopath',
      'intr',
      'no_remote_lock',
      'debug',
      'relatime',
      'norelatime',
      'strictatime',
      'lazytime',
    ].map((name) => [name, noEffect]),
  ),
};

function count(name: string, value: string, max = 2 ** 32 - 1): number {
  if (!/^\d+$/.test(value) || Number(value) > max) throw new ConfigError(`-o ${name}=${value}: not a number from 0 to ${max}`);
  return Number(value);
}

function seconds(name: string, value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new ConfigError(`-o ${name}=${value}: not a number of seconds`);
  return Math.min(Math.round(Number(value) * 1000), 2 ** 32 - 1);
}

const VALUED: Record<string, Effect> = {
  fsname: (t, v) => void (t.fsname = v),
  subtype: (t, v) => void (t.subtype = v),
  uid: (t, v) => void (t.uid = count('uid', v)),
  gid: (t, v) => void (t.gid = count('gid', v)),
  umask: (t, v) => {
    if (!/^[0-7]{1,4}$/.test(v)) throw new ConfigError(`-o umask=${v}: not an octal mask`);
    t.umask = parseInt(v, 8);
  },
  attr_timeout: (t, v) => void (t.attrTimeoutMs = seconds('attr_timeout', v)),
  entry_timeout: (t, v) => void (t.entryTimeoutMs = seconds('entry_timeout', v)),
  max_read: (t, v) => kernel(t, `max_read=${count('max_read', v)}`),
  max_write: (t, v) => void (t.maxWrite = count('max_write', v)),
  max_readahead: (t, v) => void (t.maxReadahead = count('max_readahead', v)),
  max_background: (t, v) => void (t.maxBackground = count('max_background', v, 65535)),
  congestion_threshold: (t, v) => void (t.congestionThreshold = count('congestion_threshold', v, 65535)),
  ...Object.fromEntries(
    ['negative_timeout', 'ac_attr_timeout', 'remember', 'intr_signal', 'modules', 'blksize'].map((name) => [name, noEffect]),
  ),
};

/** Options fstab and mount(8) hand to helpers that mean nothing to FUSE itself. */
const MOUNT_ONLY = new Set(['auto', 'noauto', 'user', 'nouser', 'users', 'owner', 'nofail', '_netdev', 'defaults']);

function effectOf(item: string): Effect | undefined {
  const eq = item.indexOf('=');
  const [table, name] = eq < 0 ? [FLAGS, item] : [VALUED, item.slice(0, eq)];
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

/** Checks one `-o` item; returns it to pass on, undefined to drop, or throws a clear error. */
export function checkFuseOption(item: string): string | undefined {
  const eq = item.indexOf('=');
  const name = eq < 0 ? item : item.slice(0, eq);
  if (MOUNT_ONLY.has(name) || name.startsWith('x-') || name.startsWith('comment=')) return undefined;
  if (!/^[A-Za-z0-9_.:/@+-]*$/.test(eq < 0 ? '' : item.slice(eq + 1))) {
    throw new ConfigError(`FUSE option "${item}" has characters that cannot be passed on`);
  }
  if (effectOf(item) === undefined) {
    throw new ConfigError(`unknown FUSE option "-o ${item}"`);
  }
  return item;
}

/** Applies checked `-o` items, in order (a later one wins), to the defaults. */
export function applyFuseOptions(defaults: FuseTuning, items: readonly string[]): FuseTuning {
  const tuning: FuseTuning = { ...defaults, mountOptions: [...defaults.mountOptions] };
  for (const item of items) {
    if (checkFuseOption(item) === undefined) continue;
    const eq = item.indexOf('=');
    effectOf(item)?.(tuning, eq < 0 ? item : item.slice(eq + 1));
  }
  return tuning;
}
