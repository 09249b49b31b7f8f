// For tests of the background --listBlocks listing: its state from the stats file, waits for it
// and for log lines, and which ListObjects requests a recording proxy saw.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, parseStatsFile } from './ours.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The stats file now (stat --cached=never: an open reads the snapshot its last getattr made). */
export async function statsNow(mnt) {
  await run('stat', ['--cached=never', '--format=%s', join(mnt, 'stats')]);
  return parseStatsFile(await readFile(join(mnt, 'stats'), 'utf8'));
}

/** Polls `check` until it returns something truthy, and returns that. */
export async function waitUntil(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Waits until the listing is in `state` (done, failed, stopped) and returns the stats then. */
export function waitForListing(mnt, state = 'done', timeoutMs) {
  return waitUntil(
    `the listing to be ${state}`,
    async () => {
      const stats = await statsNow(mnt);
      if (stats.zero_block_cache_listing !== 'running' && stats.zero_block_cache_listing !== state) {
        throw new Error(`the listing ended ${stats.zero_block_cache_listing}, not ${state}`);
      }
      return stats.zero_block_cache_listing === state && stats;
    },
    timeoutMs,
  );
}

/** Waits until a foreground mount (startMount) has logged a line matching `pattern`. */
export function waitForLog(m, pattern, timeoutMs) {
  return waitUntil(`a log line ${pattern}`, () => pattern.test(m.stderr()), timeoutMs);
}

/** Matches ListObjectsV2 requests in the proxy's "METHOD /path?query" form. */
export const LIST_REQUEST = /^GET \/disk\/?\?(.*&)?list-type=2/;

/** The proxy's records of listing requests. */
export const listRequests = (proxy) => proxy.requests.filter((q) => LIST_REQUEST.test(`${q.method} ${q.url}`));

/** A listing request's start-after (null without one). */
export const startAfterOf = (q) => new URL(q.url, 'http://x').searchParams.get('start-after');

/** The most requests that were in flight at one moment (each from `at` to `doneAt`). */
export function mostAtOnce(records) {
  let most = 0;
  for (const r of records) {
    most = Math.max(most, records.filter((o) => o.at <= r.at && (o.doneAt ?? Infinity) > r.at).length);
  }
  return most;
}
