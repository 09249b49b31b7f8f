// Which blocks are known to be all zeros, one bit per block. The zero cache keeps it up to date;
// the assembler (src/mount/stack.ts) hands it down to the block cache, whose read-ahead does not
// fetch what is known to be zero. So the knowledge flows downward and no layer calls upward.

/** The question a layer below the zero cache may ask. */
export interface KnownZeros {
  isKnownZero(n: number): boolean;
}

/** One bit per block. */
export class BlockSet {
  readonly bits: Uint8Array;

  constructor(numBlocks: number) {
    this.bits = new Uint8Array(Math.ceil(numBlocks / 8));
  }

  has(n: number): boolean {
    return ((this.bits[n >>> 3] ?? 0) & (1 << (n & 7))) !== 0;
  }

  set(n: number): void {
    this.bits[n >>> 3]! |= 1 << (n & 7);
  }
}

export class ZeroBlocks implements KnownZeros {
  private readonly set: BlockSet;
  /** How many blocks are known to be zero. */
  count = 0;

  constructor(numBlocks: number) {
    this.set = new BlockSet(numBlocks);
  }

  isKnownZero(n: number): boolean {
    return this.set.has(n);
  }

  mark(n: number, zero: boolean): void {
    if (this.isKnownZero(n) === zero) return;
    this.set.bits[n >>> 3]! ^= 1 << (n & 7);
    this.count += zero ? 1 : -1;
  }

  /** Marks zero every block of [first, end) that is in neither `found` nor `touched`. */
  learn(first: number, end: number, found: BlockSet, touched: BlockSet): void {
    let n = first;
    for (; n < end && (n & 7) !== 0; n++) if (!found.has(n) && !touched.has(n)) this.mark(n, true);
    // Whole bytes at once: a disk of millions of blocks must not hold up the requests being served.
    const bits = this.set.bits;
    for (; n + 8 <= end; n += 8) {
      const i = n >>> 3;
      const add = ~(found.bits[i]! | touched.bits[i]! | bits[i]!) & 0xff;
      if (add === 0) continue;
      bits[i]! |= add;
      this.count += bitCount(add);
    }
    for (; n < end; n++) if (!found.has(n) && !touched.has(n)) this.mark(n, true);
  }
}

function bitCount(byte: number): number {
  let count = 0;
  for (let b = byte; b !== 0; b &= b - 1) count++;
  return count;
}
