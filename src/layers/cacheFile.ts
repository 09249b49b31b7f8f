// Opening the block cache file (--blockCacheFile), kept in upstream's format: a new file is
// created; an existing one is checked (a foreign or damaged file, or one of another block size,
// is refused, never reused), converted when an older format (upstream's old one, or our own
// earlier "S3BC"), and resized when --blockCacheSize changed, keeping what fits (dirty first; a
// file whose dirty blocks are to be recovered is never shrunk below them). The rewrite itself,
// durable before the new file replaces the old, is the native core's (cache_recovery.rs).

import { existsSync } from 'node:fs';
import { SlotStores, readCacheFile, rewriteCacheFile, type SlotEntry, type SlotStore } from '../native/addon';
import type { Logger } from '../util/log';
import { ConfigError } from '../errors';

/** The cache file's settings, as the flags give them. */
export interface CacheFileSettings {
  /** Absolute path of the cache file; undefined = anonymous memory. */
  readonly file: string | undefined;
  readonly noVerify: boolean;
  readonly recoverDirty: boolean;
  /** --blockCacheFileAdvise: drop a slot's pages from memory once read (or written back). */
  readonly fileAdvise: boolean;
}

export interface OpenedCacheFile {
  readonly slots: SlotStore;
  /** Entries found in an existing file (empty for a new one). */
  readonly entries: readonly SlotEntry[];
  /** Mount token of the mount that last used the file (0 for a new one). */
  readonly token: number;
}

/** The mount token in an existing cache file's header; 0 when there is no usable file. */
export function cacheFileToken(path: string): number {
  try {
    return readCacheFile(path).header.mountToken;
  } catch {
    return 0; // missing, or damaged: opening it later says which
  }
}

function openExisting(path: string): SlotStore {
  try {
    return SlotStores.openFile(path);
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}: refusing to use it; remove it or choose another --blockCacheFile`);
  }
}

const FORMAT_NAMES: Readonly<Record<string, string>> = {
  'dcache-old': "upstream's old format (no dirty blocks)",
  s3bc: 'the format of earlier versions of this s3backer',
};

export function openCacheFile(
  path: string,
  blockSize: number,
  numSlots: number,
  log: Logger,
  options: { advise: boolean; keepDirty?: boolean } = { advise: false },
): OpenedCacheFile {
  if (!existsSync(path)) {
    const slots = SlotStores.createFile(path, blockSize, numSlots, 0);
    slots.setAdvise(options.advise);
    return { slots, entries: [], token: 0 };
  }
  let slots = openExisting(path);
  const { header } = slots;
  if (header.blockSize !== blockSize) {
    throw new ConfigError(
      `cache file ${path} holds blocks of ${header.blockSize} bytes, but this disk's blocks are ${blockSize} bytes: ` +
        'remove it or choose another --blockCacheFile',
    );
  }
  let entries = slots.entries();
  const oldFormat = FORMAT_NAMES[header.format];
  if (oldFormat !== undefined || header.numSlots !== numSlots) {
    let r;
    try {
      r = rewriteCacheFile(path, numSlots, options.keepDirty === true);
    } catch (err) {
      throw new ConfigError(`${(err as Error).message}; or remove it (its dirty blocks are lost then)`);
    }
    const torn = r.torn > 0 ? `; ${r.torn} dirty blocks whose data did not match their checksum were left out` : '';
    if (oldFormat !== undefined) {
      log.info(
        `cache file ${path} converted from ${oldFormat} to upstream's, keeping ${r.kept} of ${r.found} blocks (${r.dirty} dirty)` +
          (header.numSlots !== numSlots ? `, resized from ${header.numSlots} to ${numSlots} slots` : '') +
          torn,
      );
    } else {
      log.info(`cache file ${path} resized from ${header.numSlots} to ${numSlots} slots, keeping ${r.kept} of ${r.found} blocks${torn}`);
    }
    if (r.torn > 0) log.warn(`cache file ${path}: ${r.torn} dirty blocks were torn (a power cut mid-write?) and are not recovered`);
    slots = openExisting(path);
    entries = slots.entries();
  }
  slots.setAdvise(options.advise);
  return { slots, entries, token: header.mountToken };
}
