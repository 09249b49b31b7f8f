// The Rust core behind a thin typed wrapper. The napi-rs loader (native/index.js) tries the local
// build first, then the installed platform package; when both fail we say which and how to fix it.

import * as path from 'node:path';
import { packageRoot } from '../util/packageRoot';

// The types are the ones napi-rs generates from the Rust source (native/index.d.ts): a copy
// written by hand once disagreed with them and put an "undefined" HMAC header on the wire.
import type * as Native from '../../native/index';

export type {
  BlockCodec,
  BlockMap,
  CacheHeader,
  CodecOptions,
  EncodedBlock,
  FileLock,
  FuseRequest,
  FuseSession,
  FuseSessionOptions,
  Hits,
  RecoveredEntry,
  SlotEntry,
  SlotStore,
} from '../../native/index';

type NativeCore = typeof Native;

/** The loader's own message is generic ("Cannot find native binding"); why each candidate failed
 *  (missing file, wrong glibc, ...) is in its `cause` chain, newest first. */
function loadFailures(err: unknown): string {
  const messages: string[] = [];
  for (let e: unknown = err; e instanceof Error && messages.length < 8; e = e.cause) {
    messages.push(e.message.split('\n')[0] ?? '');
  }
  return messages.join('; ');
}

function loadCore(): NativeCore {
  const loader = path.join(packageRoot(), 'native', 'index.js');
  try {
    // The loader's path is known only at run time (dist/ or an installed copy): a plain require.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(loader) as NativeCore;
  } catch (err) {
    // As napi-rs's loader decides: Node reports a glibc version only on glibc.
    const { header } = process.report.getReport() as { header: { glibcVersionRuntime?: string } };
    const platform = `${process.platform}-${process.arch}-${header.glibcVersionRuntime ? 'gnu' : 'musl'}`;
    throw new Error(
      `s3backer: the native core could not be loaded for ${process.platform}-${process.arch}: ` +
        `neither a local build (native/s3backer.${platform}.node, made by "npm run build:native") ` +
        `nor the platform package "s3backer-${platform}" (installed with s3backer as an optional dependency) ` +
        `is usable. Reinstall s3backer on a supported platform (Linux on x64 or arm64 with glibc 2.17 or later, or x64 with musl). Cause: ${loadFailures(err)}`,
      { cause: err },
    );
  }
}

const core = loadCore();

/** True when every byte is zero (such blocks are never stored). */
export const isZeroBlock = (data: Uint8Array): boolean => core.isZero(data);
/** MD5 of the data, 16 bytes. */
export const md5 = (data: Uint8Array): Buffer => core.md5(data);
export const md5Hex = (data: Uint8Array): string => core.md5Hex(data);
/** Null for an all-zero block, else its MD5: the write path's zero check and Content-MD5 in one call. */
export const blockDigest = (data: Uint8Array): Buffer | null => core.blockDigest(data);
/** blockDigest of each block in one task on the pool (up to sixteen of one length hashed side by side); read in place. */
export const blockDigestsAsync = (blocks: Uint8Array[]): Promise<Array<Buffer | null>> => core.blockDigestsAsync(blocks);

/** Slots over anonymous memory, a new cache file, or an existing one (refused if foreign or damaged). */
export const SlotStores: typeof Native.SlotStore = core.SlotStore;
/** Rewrites a cache file with another slot count (or from an older format), durably; see native/src/cache_recovery.rs. */
export const rewriteCacheFile = (path: string, numSlots: number, keepAllDirty: boolean): Native.CacheFileRewrite =>
  core.rewriteCacheFile(path, numSlots, keepAllDirty);
/** Header and used entries of a cache file, read without changing it. */
export const readCacheFile = (path: string): Native.CacheFileContents => core.inspectCacheFile(path);
/** A block codec; throws a clear message for an unknown cipher or compression. */
export const createBlockCodec = (options: Native.CodecOptions): Native.BlockCodec => core.BlockCodec.create(options);
/** The exclusive flock of the file at `path` (created if missing), or null while another holds it. */
export const tryLockFile = (path: string): Native.FileLock | null => core.tryLockFile(path);
/** Sets the IP type of service (IPv6: traffic class) of a connected socket's descriptor. */
export const setTypeOfService = (fd: number, tos: number): void => core.setTypeOfService(fd, tos);
/** [key, ivkey] in hex, derived as upstream does (for known-answer tests). */
export const deriveCipherKeys = (password: string, salt: string, keyLength: number): string[] =>
  core.deriveCipherKeys(password, salt, keyLength);
/** Mounts a FUSE session served by the native core (see src/fuse/); throws if the mount is refused. */
export const FuseSessions: typeof Native.FuseSession = core.FuseSession;
/** A block cache's map of blocks to slots, which the FUSE session reads and writes through. */
export const BlockMaps: typeof Native.BlockMap = core.BlockMap;
