// Lets the process exit once the kernel mount is gone. fuse-native holds a libuv handle on the
// event loop from mount until its own unmount() runs, and that unmount starts with
// `fusermount -uz`, which fails once the mount has ended (our unmount ends it first; so can
// `fusermount -u` from outside), so it never reaches the step that drops the handle. The CLI
// exits explicitly; a program using mount() from code needs this to end on its own.

import { createRequire } from 'node:module';
import * as path from 'node:path';
import type Fuse = require('fuse-native');

interface FuseBinding {
  fuse_native_unmount(mountpoint: string, thread: unknown): void;
}

let binding: FuseBinding | undefined;

export function releaseFuse(fuse: Fuse): void {
  // The same native module instance fuse-native loaded (native modules are cached by path).
  const entry = require.resolve('fuse-native');
  binding ??= (createRequire(entry)('node-gyp-build') as (dir: string) => FuseBinding)(path.dirname(entry));
  const internals = fuse as unknown as { mnt: string; _thread: unknown };
  if (internals._thread) binding.fuse_native_unmount(internals.mnt, internals._thread);
}
