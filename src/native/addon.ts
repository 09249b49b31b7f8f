// The Rust core behind a thin typed wrapper. The napi-rs loader (native/index.js) tries the local
// build first, then the installed platform package; when both fail we say which and how to fix it.

import * as path from 'node:path';
import type { FileLock } from '../../native/index';

export type { FileLock };

export interface CacheHeader {
  magic: number;
  version: number;
  blockSize: number;
  numSlots: number;
  mountToken: number;
  /** Byte offset of slot 0's data in the file; slot k's lies blockSize * k further on. */
  dataOffset: number;
}

export interface SlotEntry {
  slot: number;
  block: number;
  dirty: boolean;
  /** 32 hex digits, zeros when unknown. */
  etag: string;
}

/** Block slots in a mapped cache file or anonymous memory (native/src/slots.rs). */
export interface SlotStore {
  readonly header: CacheHeader;
  write(slot: number, data: Uint8Array): void;
  writePart(slot: number, offset: number, data: Uint8Array): void;
  read(slot: number): Buffer;
  /** Copies target.length bytes at `offset` of the slot's block into target. */
  readInto(slot: number, offset: number, target: Uint8Array): void;
  /** Maps in never-used anonymous slots ahead of use (contents untouched; no-op for cache files). */
  prefault(first: number, count: number): Promise<void>;
  setEntry(slot: number, block: number, dirty: boolean, etag?: Uint8Array | null): void;
  clearEntry(slot: number): void;
  entries(): SlotEntry[];
  setMountToken(token: number): void;
  syncData(slot: number): Promise<unknown>;
  syncEntry(slot: number): Promise<unknown>;
}

interface SlotStoreClass {
  anonymous(blockSize: number, numSlots: number): SlotStore;
  createFile(path: string, blockSize: number, numSlots: number, mountToken: number): SlotStore;
  openFile(path: string): SlotStore;
}

export interface CodecOptions {
  blockSize: number;
  compression?: 'deflate' | 'zstd';
  level?: number;
  cipher?: string;
  password?: string;
  salt?: string;
  keyLength?: number;
}

export interface EncodedBlock {
  body: Buffer;
  /** Empty when stored as is. */
  contentEncoding: string;
  hmac: string | null;
  /** MD5 of the body (Content-MD5). */
  md5: Buffer;
}

/** Compression and encryption of blocks as upstream does them (native/src/codec.rs). */
export interface BlockCodec {
  readonly encrypted: boolean;
  /** Null for an all-zero block. Runs on the libuv pool, reading `data` in place: leave it unchanged meanwhile. */
  encode(block: number, data: Uint8Array): Promise<EncodedBlock | null>;
  /** Rejects on a bad HMAC, unknown encoding or wrong length. Runs on the libuv pool, reading `body` in place. */
  decode(block: number, body: Uint8Array, contentEncoding: string, hmac?: string | null): Promise<Buffer>;
}

interface NativeCore {
  BlockCodec: { create(options: CodecOptions): BlockCodec };
  deriveCipherKeys(password: string, salt: string, keyLength: number): string[];
  isZero(data: Uint8Array): boolean;
  md5(data: Uint8Array): Buffer;
  md5Hex(data: Uint8Array): string;
  blockDigest(data: Uint8Array): Buffer | null;
  blockDigestAsync(data: Uint8Array): Promise<Buffer | null>;
  SlotStore: SlotStoreClass;
  inspectCacheFile(path: string): { header: CacheHeader; entries: SlotEntry[] };
  tryLockFile(path: string): FileLock | null;
}

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
  const loader = path.join(__dirname, '..', '..', 'native', 'index.js');
  try {
    return require(loader) as NativeCore;
  } catch (err) {
    throw new Error(
      `s3backer: the native core could not be loaded for ${process.platform}-${process.arch}: ` +
        'neither a local build (native/s3backer.linux-x64-gnu.node, made by "npm run build:native") ' +
        'nor the platform package "s3backer-linux-x64-gnu" (installed with s3backer as an optional dependency) ' +
        `is usable. Reinstall s3backer on a supported platform (Linux x64, glibc). Cause: ${loadFailures(err)}`,
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
/** blockDigest on the libuv thread pool; the data is read in place, so it must not change until this settles. */
export const blockDigestAsync = (data: Uint8Array): Promise<Buffer | null> => core.blockDigestAsync(data);

/** Slots over anonymous memory, a new cache file, or an existing one (refused if foreign or damaged). */
export const SlotStores: SlotStoreClass = core.SlotStore;
/** Header and used entries of a cache file, read without changing it. */
export const readCacheFile = (path: string): { header: CacheHeader; entries: SlotEntry[] } => core.inspectCacheFile(path);
/** A block codec; throws a clear message for an unknown cipher or compression. */
export const createBlockCodec = (options: CodecOptions): BlockCodec => core.BlockCodec.create(options);
/** [key, ivkey] in hex, derived as upstream does (for known-answer tests). */
export const deriveCipherKeys = (password: string, salt: string, keyLength: number): string[] =>
  core.deriveCipherKeys(password, salt, keyLength);
/** The exclusive flock of the file at `path` (created if missing), or null while another holds it. */
export const tryLockFile = (path: string): FileLock | null => core.tryLockFile(path);
