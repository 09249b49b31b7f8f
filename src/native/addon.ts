// The Rust core behind a thin typed wrapper. The napi-rs loader (native/index.js) tries the local
// build first, then the installed platform package; when both fail we say which and how to fix it.

import * as path from 'node:path';

interface NativeCore {
  isZero(data: Uint8Array): boolean;
  md5(data: Uint8Array): Buffer;
  md5Hex(data: Uint8Array): string;
  blockDigest(data: Uint8Array): Buffer | null;
}

function loadCore(): NativeCore {
  const loader = path.join(__dirname, '..', '..', 'native', 'index.js');
  try {
    return require(loader) as NativeCore;
  } catch (err) {
    throw new Error(
      `s3backer: the native core could not be loaded for ${process.platform}-${process.arch}: ` +
        'neither a local build (native/s3backer.linux-x64-gnu.node, made by "npm run build:native") ' +
        'nor the platform package "s3backer-linux-x64-gnu" (installed with s3backer as an optional dependency) ' +
        `is usable. Reinstall s3backer on a supported platform (Linux x64, glibc). Cause: ${(err as Error).message}`,
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
