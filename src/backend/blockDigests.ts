// The zero check and Content-MD5 of blocks about to be uploaded, on the thread pool. Uploads
// start in bursts (write-behind, flushes, a cache file's reload), so the blocks asked for in one
// turn of the event loop go together, sixteen to a task: the native core hashes eight blocks of
// one length side by side in about the time one takes alone, and sixteen in about the time of
// eight (native/src/md5_lanes.rs).

import { blockDigestsAsync } from '../native/addon';

/** Blocks per native task: its vector path takes two chains of eight lanes. */
const BATCH = 16;

interface Waiting {
  readonly data: Uint8Array;
  readonly resolve: (digest: Buffer | null) => void;
  readonly reject: (err: unknown) => void;
}

let waiting: Waiting[] = [];
let scheduled = false;

/** Null for an all-zero block, else its MD5. The data is read in place: it must not change until this settles. */
export function blockDigest(data: Uint8Array): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    waiting.push({ data, resolve, reject });
    if (waiting.length >= BATCH) send();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        send();
      });
    }
  });
}

function send(): void {
  const batch = waiting;
  waiting = [];
  for (let i = 0; i < batch.length; i += BATCH) {
    const part = batch.slice(i, i + BATCH);
    blockDigestsAsync(part.map((w) => w.data)).then(
      (digests) => part.forEach((w, j) => w.resolve(digests[j] ?? null)),
      (err: unknown) => part.forEach((w) => w.reject(err)),
    );
  }
}
