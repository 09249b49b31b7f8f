// Opening the block cache file (--blockCacheFile): a new file is created; an existing one is
// checked (a foreign or damaged file, or one of another block size, is refused, never reused)
// and resized when --blockCacheSize changed, keeping what fits (dirty blocks first).

import { existsSync, renameSync, rmSync } from 'node:fs';
import { ConfigError } from '../config/config';
import { SlotStores, readCacheFile, type SlotEntry, type SlotStore } from '../native/addon';
import type { Logger } from '../util/log';

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

export async function openCacheFile(path: string, blockSize: number, numSlots: number, log: Logger): Promise<OpenedCacheFile> {
  if (!existsSync(path)) {
    return { slots: SlotStores.createFile(path, blockSize, numSlots, 0), entries: [], token: 0 };
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
  if (header.numSlots !== numSlots) {
    // Copy into a new file of the new size, dirty blocks first, then swap it in.
    const keep = [...entries].sort((a, b) => Number(b.dirty) - Number(a.dirty)).slice(0, numSlots);
    const temp = `${path}.resize`;
    rmSync(temp, { force: true });
    const resized = SlotStores.createFile(temp, blockSize, numSlots, header.mountToken);
    for (const [slot, e] of keep.entries()) {
      resized.write(slot, slots.read(e.slot));
      await resized.syncData(slot);
      resized.setEntry(slot, e.block, e.dirty, e.etag === '0'.repeat(32) ? null : Buffer.from(e.etag, 'hex'));
      await resized.syncEntry(slot);
    }
    renameSync(temp, path);
    log.info(`cache file ${path} resized from ${header.numSlots} to ${numSlots} slots, keeping ${keep.length} of ${entries.length} blocks`);
    slots = openExisting(path);
    entries = slots.entries();
  }
  return { slots, entries, token: header.mountToken };
}
