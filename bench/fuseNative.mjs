// fuse-native 2.2.6, the binding s3backer served FUSE through before the native session, kept
// for the benchmark's baseline only: installed on first use into .cache/, outside the package's
// dependencies, and loaded from there.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const VERSION = '2.2.6';
const PREFIX = join(dirname(fileURLToPath(import.meta.url)), '..', '.cache', 'bench-fuse-native');
const MODULE = join(PREFIX, 'node_modules', 'fuse-native');

/** The binding, or an Error saying why it cannot be loaded (not installed, no libfuse.so.2). */
export function loadFuseNative() {
  if (!existsSync(MODULE)) return new Error(`fuse-native is not installed in ${PREFIX}`);
  try {
    return createRequire(join(PREFIX, 'node_modules'))(MODULE);
  } catch (err) {
    return new Error(`fuse-native does not load (it needs the system's libfuse.so.2, Debian's libfuse2): ${err.message}`);
  }
}

/** Installs fuse-native when missing; resolves undefined when it loads, else the reason it cannot. */
export async function ensureFuseNative() {
  if (!existsSync(MODULE)) {
    try {
      await promisify(execFile)('npm', [
        'install',
        '--no-save',
        '--no-package-lock',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        '--prefix',
        PREFIX,
        `fuse-native@${VERSION}`,
      ]);
    } catch (err) {
      return `npm could not install fuse-native@${VERSION} into ${PREFIX}: ${String(err.stderr || err.message).trim()}`;
    }
  }
  const loaded = loadFuseNative();
  return loaded instanceof Error ? loaded.message : undefined;
}
