// Size strings as upstream accepts them: a decimal number with an optional binary suffix.

const SUFFIX_BITS: Record<string, number> = { k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };

/** Parses "4096", "64k", "1M", "2g", "1t" (suffixes are powers of 1024, case-insensitive). */
export function parseSize(text: string): number {
  const match = /^\s*(\d+)\s*([kmgtpe]?)(?:i?b)?\s*$/i.exec(text);
  if (!match) throw new Error(`invalid size "${text}": expected a number with an optional suffix k, m, g or t`);
  const [, digits = '', suffix = ''] = match;
  const value = Number(digits) * 2 ** (SUFFIX_BITS[suffix.toLowerCase()] ?? 0);
  if (!Number.isSafeInteger(value)) throw new Error(`size "${text}" is too large`);
  return value;
}

/** Prints a byte count the way a person reads it back: 1g, 64k, or plain bytes. */
export function formatSize(bytes: number): string {
  for (const [suffix, bits] of Object.entries(SUFFIX_BITS).reverse()) {
    const unit = 2 ** bits;
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return String(bytes);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
