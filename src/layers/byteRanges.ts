// The parts of a block that partial writes have filled so far, as sorted, disjoint byte ranges
// [start, end): a block written in pieces needs no fetch once they cover it.

export type ByteRange = [start: number, end: number];

/** Adds [a, b) to sorted, disjoint ranges; null when they then cover the whole block of `size` bytes. */
export function addRange(ranges: readonly ByteRange[], a: number, b: number, size: number): ByteRange[] | null {
  const merged: ByteRange[] = [];
  for (const [x, y] of [...ranges, [a, b] as ByteRange].sort((p, q) => p[0] - q[0])) {
    const last = merged[merged.length - 1];
    if (last && x <= last[1]) last[1] = Math.max(last[1], y);
    else merged.push([x, y]);
  }
  return merged.length === 1 && merged[0]![0] === 0 && merged[0]![1] >= size ? null : merged;
}

/** The parts of [0, size) not in the ranges. */
export function gaps(ranges: readonly ByteRange[], size: number): ByteRange[] {
  const out: ByteRange[] = [];
  let at = 0;
  for (const [a, b] of ranges) {
    if (a > at) out.push([at, a]);
    at = Math.max(at, b);
  }
  if (at < size) out.push([at, size]);
  return out;
}
