// Work in batches and with bounded parallelism: a TRIM of 100 GiB is millions of blocks, and
// starting one promise each at once would hold all of them in memory.

/** The items in slices of `size` (the last one shorter). */
export function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * Runs task(0) .. task(count - 1), at most `limit` at a time, in order of starting. After a
 * failure no further task starts; the promise rejects with the first error once the running
 * ones have ended (nothing is left going on behind the caller's back).
 */
export async function forEachLimited(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (failure !== undefined) throw failure.error;
}

/** Waits for every promise to settle, then rejects with the first failure, if any (Promise.all rejects at once). */
export async function allSettled(promises: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
