// Runs the command's bundle with V8's code cache made after the run, not before it. Node's own
// compile cache is made as a module is compiled, when V8 has compiled only its top level: every
// function a mount then calls is still parsed and compiled at each start. A cache made once the
// mount is up holds the bytecode of those functions too, and a mount's start takes about 40 ms
// less here (docs/performance.md).
//
// V8 checks a cache against its own version and flags, but against the source only by its length,
// so the file's header names the bundle it was made from (size, modification time, inode) and a
// cache for another bundle is never handed to V8. The cache lives in the user's own cache
// directory, never in a shared one such as /tmp: a root mount must not run code another user could
// have left there.

import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/** A mount that has run this long has compiled what its start needs: then its cache is written. */
export const SAVE_AFTER_MS = 3000;

/** How the run went with the cache, for tests and --debug. */
export type CacheUse = 'used' | 'none' | 'stale' | 'rejected';

export interface BundleRun {
  readonly cacheUse: CacheUse;
  /** Writes the cache now (if the run did not use one); false when it could not be written. */
  save(): boolean;
}

/** $XDG_CACHE_HOME/s3backer/code-cache, or ~/.cache/…; undefined without a home. */
export function defaultCacheDir(): string | undefined {
  const base = process.env['XDG_CACHE_HOME'] || (homedir() ? join(homedir(), '.cache') : '');
  return base ? join(base, 's3backer', 'code-cache') : undefined;
}

/**
 * One file per bundle path, V8 version and architecture, so two installs or two Node versions
 * used in turn do not overwrite each other's cache; an upgrade in place replaces its own.
 */
function cachePath(dir: string, file: string): string {
  let hash = 0x811c9dc5; // FNV-1a of the path: a name, not a check
  for (let i = 0; i < file.length; i++) hash = Math.imul(hash ^ file.charCodeAt(i), 0x01000193) >>> 0;
  return join(dir, `cli-${hash.toString(16).padStart(8, '0')}-${process.arch}-v8-${process.versions.v8}.bin`);
}

function bundleKey(file: string): string {
  const st = statSync(file);
  return `s3backer code cache 1 ${st.size} ${st.mtimeMs} ${st.ino}\n`;
}

function readCache(path: string, key: string): Buffer | 'none' | 'stale' {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    return 'none';
  }
  const header = Buffer.from(key);
  return data.length > header.length && data.subarray(0, header.length).equals(header) ? data.subarray(header.length) : 'stale';
}

/**
 * Runs `file` as a CommonJS module (what `require` would do), with the code cache from `cacheDir`
 * when it was made from this very file by this V8. `cacheDir` undefined runs without a cache.
 */
export function runBundle(file: string, cacheDir: string | undefined): BundleRun {
  const source = readFileSync(file, 'utf8');
  const key = bundleKey(file);
  const path = cacheDir === undefined ? undefined : cachePath(cacheDir, file);
  const cached = path === undefined ? 'none' : readCache(path, key);
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData: typeof cached === 'string' ? undefined : cached,
  });
  const cacheUse: CacheUse = typeof cached === 'string' ? cached : script.cachedDataRejected === true ? 'rejected' : 'used';
  const save = (): boolean => {
    if (path === undefined || cacheUse === 'used') return false;
    const temp = `${path}.${process.pid}`;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(temp, Buffer.concat([Buffer.from(key), script.createCachedData()]), { mode: 0o600 });
      renameSync(temp, path);
      return true;
    } catch {
      // An unwritable cache directory: the next start compiles again.
      try {
        unlinkSync(temp);
      } catch {
        // never written
      }
      return false;
    }
  };
  const module = { exports: {}, filename: file, id: file, loaded: false };
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  fn.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  return { cacheUse, save };
}
