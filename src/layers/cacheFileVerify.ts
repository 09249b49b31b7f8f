// At mount, the clean blocks a cache file brought back are checked before they are served (unless
// --blockCacheNoVerify): the slot's data must still give the ETag its entry claims (stored as this
// disk stores blocks: an encoded disk's data is encoded again, which reproduces our own bodies),
// and S3 must still hold that version (a conditional GET, If-None-Match: 304 = unchanged). A slot
// whose data fails the first check is fetched again in full, since S3 would answer 304 to the
// entry's ETag whatever the slot holds; one whose object changed takes the new data. Each slot's
// entry is cleared and synced before new data lands in it, so no entry ever covers data it does
// not describe.

import type { ETag, TaggedBlock, TaggedBlockStore } from '../store/blockStore';
import type { SlotStore } from '../native/addon';
import type { Logger } from '../util/log';
import type { ProgressCallback } from '../util/progress';

export interface RestoredSlot {
  readonly block: number;
  readonly slot: number;
  /** The ETag the slot's entry claims. */
  readonly etag: ETag;
}

/** kept: the slot was right and S3 unchanged; refreshed: it now holds S3's data; dropped: it could not be checked. */
export type Verdict = 'kept' | 'refreshed' | 'dropped';

export interface VerifyOptions {
  /** Checks at once (each one request or two). */
  readonly threads: number;
  readonly blockSize: number;
  readonly log: Logger;
  readonly onProgress?: ProgressCallback | undefined;
  /** Each slot's outcome as soon as it is known, so the cache can serve it at once. */
  readonly onVerdict: (slot: RestoredSlot, verdict: Verdict) => void;
}

export async function verifyRestoredSlots(
  store: TaggedBlockStore,
  slots: SlotStore,
  restored: readonly RestoredSlot[],
  o: VerifyOptions,
): Promise<void> {
  const queue = [...restored];
  // Verifying is the slow part (one request per block): that is what progress counts.
  let checked = 0;
  if (restored.length > 0) o.onProgress?.(0, restored.length);
  const damaged: number[] = [];
  const check = async (r: RestoredSlot, local: Buffer): Promise<Verdict> => {
    slots.readInto(r.slot, 0, local);
    let fresh: TaggedBlock | null;
    if (await store.storesAs(r.block, local, r.etag)) {
      // The slot holds what its entry says: only whether the store changed is left to ask.
      fresh = await store.readBlockIfChanged(r.block, r.etag);
    } else {
      // Damaged data (or an ETag this disk's encoding does not reproduce): never trust it,
      // not even on a 304 for the ETag the entry claims.
      damaged.push(r.block);
      o.log.debug(`cache file: block ${r.block} (slot ${r.slot}) does not match its entry's ETag ${r.etag}; fetching it again`);
      fresh = await store.readBlockTagged(r.block);
    }
    // null: the store said unchanged; the same data again: unchanged too.
    if (fresh === null || fresh.data.equals(local)) {
      // The data was right: the entry gets the stored object's ETag if it had another.
      if (fresh !== null && fresh.etag !== r.etag) slots.setEntry(r.slot, r.block, false, etagBytes(fresh.etag));
      return 'kept';
    }
    // The entry goes first: its claim must never cover the slot while new data lands.
    slots.clearEntry(r.slot);
    await slots.syncEntry(r.slot);
    slots.write(r.slot, fresh.data);
    await slots.syncData(r.slot);
    slots.setEntry(r.slot, r.block, false, etagBytes(fresh.etag));
    return 'refreshed';
  };
  const worker = async (): Promise<void> => {
    // Each worker checks a copy of the slot in its own buffer (hashing and any encoding run on
    // the libuv pool), overlapping with the other workers' requests.
    const local = Buffer.allocUnsafeSlow(o.blockSize);
    for (let next = queue.shift(); next; next = queue.shift()) {
      let verdict: Verdict;
      try {
        verdict = await check(next, local);
      } catch (err) {
        o.log.warn(`cache file: cannot verify block ${next.block}, dropping it: ${(err as Error).message}`);
        slots.clearEntry(next.slot);
        verdict = 'dropped';
      }
      o.onVerdict(next, verdict);
      o.onProgress?.(++checked, restored.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.threads, restored.length) }, worker));
  // One line however many blocks: a damaged file can hold thousands.
  if (damaged.length > 0) {
    o.log.warn(
      `cache file: ${damaged.length} clean ${plural(damaged.length, 'block')} did not match their checksum (damaged file?); fetched again from S3 ` +
        `(${listSome(damaged)})`,
    );
  }
}

export const etagBytes = (etag: ETag): Buffer => Buffer.from(etag, 'hex');

/** "blocks 3, 17, 40" or, for many, the first few and how many more (block numbers sorted). */
export function listSome(blocks: readonly number[], max = 8): string {
  const sorted = [...blocks].sort((a, b) => a - b);
  const shown = sorted.slice(0, max).join(', ');
  return `${plural(sorted.length, 'block')} ${shown}${sorted.length > max ? ` and ${sorted.length - max} more` : ''}`;
}

export const plural = (n: number, word: string): string => (n === 1 ? word : `${word}s`);
