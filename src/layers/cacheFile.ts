// Opening the block cache file (--blockCacheFile), kept in upstream's format: a new file is
// created; an existing one is checked (a foreign or damaged file, or one of another block size,
// is refused, never reused), converted when an older format (upstream's old one, or our own
// earlier "S3BC"), and resized when --blockCacheSize changed, keeping what fits (dirty first).

import { existsSync, renameSync, rmSync } from 'node:fs';
import { SlotStores, md5Hex, readCacheFile, type SlotEntry, type SlotStore } from '../native/addon';
import { ZERO_ETAG } from '../store/blockStore';
import type { Logger } from '../util/log';
import { ConfigError } from '../errors';

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

/**
 * Our earlier format recorded the MD5 of a block's data, so an absent block had the MD5 of
 * zeros; upstream's records the stored object's ETag, all zeros for an absent block. For any
 * other block of a plain disk the two agree; where they do not, the slot is fetched again.
 */
function convertedEntry(e: SlotEntry, format: string, zeroMd5: string): SlotEntry {
  return format === 's3bc' && e.etag === zeroMd5 ? { ...e, etag: ZERO_ETAG } : e;
}

/** Copies entries (dirty first, as many as fit) into a new file of `numSlots`, then swaps it in. */
async function rewrite(path: string, from: SlotStore, entries: readonly SlotEntry[], numSlots: number): Promise<number> {
  const { header } = from;
  const keep = [...entries].sort((a, b) => Number(b.dirty) - Number(a.dirty)).slice(0, numSlots);
  const zeroMd5 = md5Hex(Buffer.alloc(header.blockSize));
  const temp = `${path}.new`; // upstream's name for the same step
  rmSync(temp, { force: true });
  const target = SlotStores.createFile(temp, header.blockSize, numSlots, header.mountToken);
  for (const [slot, found] of keep.entries()) {
    const e = convertedEntry(found, header.format, zeroMd5);
    target.write(slot, from.read(e.slot));
    await target.syncData(slot);
    target.setEntry(slot, e.block, e.dirty, e.etag === ZERO_ETAG ? null : Buffer.from(e.etag, 'hex'));
    await target.syncEntry(slot);
  }
  renameSync(temp, path);
  return keep.length;
}

export async function openCacheFile(
  path: string,
  blockSize: number,
  numSlots: number,
  log: Logger,
  options: { advise: boolean } = { advise: false },
): Promise<OpenedCacheFile> {
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
    const kept = await rewrite(path, slots, entries, numSlots);
    const dirty = entries.filter((e) => e.dirty).length;
    if (oldFormat !== undefined) {
      log.info(
        `cache file ${path} converted from ${oldFormat} to upstream's, keeping ${kept} of ${entries.length} blocks (${dirty} dirty)` +
          (header.numSlots !== numSlots ? `, resized from ${header.numSlots} to ${numSlots} slots` : ''),
      );
    } else {
      log.info(`cache file ${path} resized from ${header.numSlots} to ${numSlots} slots, keeping ${kept} of ${entries.length} blocks`);
    }
    slots = openExisting(path);
    entries = slots.entries();
  }
  slots.setAdvise(options.advise);
  return { slots, entries, token: header.mountToken };
}
