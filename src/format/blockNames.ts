// Object names of blocks and of the mounted flag, exactly as upstream s3backer writes them.

/** Upstream's name for the object that marks a bucket as mounted (never hashed). */
export const MOUNTED_FLAG_NAME = 's3backer-mounted';

/** Block numbers are 32-bit and printed as 8 lowercase hex digits. */
export const MAX_BLOCKS = 2 ** 32;

export function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

/** Upstream's block hash: spreads keys over the S3 key space with --blockHashPrefix. */
export function blockHash(blockNum: number): number {
  let hash = blockNum >>> 0;
  for (let n = 12; n > 0; n--) hash = (Math.imul((hash >>> 8) ^ hash, 0x6b) + n) >>> 0;
  return hash;
}

export interface BlockNaming {
  readonly prefix: string;
  readonly blockHashPrefix: boolean;
}

export function blockKey(naming: BlockNaming, blockNum: number): string {
  const hashPart = naming.blockHashPrefix ? `${hex8(blockHash(blockNum))}-` : '';
  return `${naming.prefix}${hashPart}${hex8(blockNum)}`;
}

export function mountedFlagKey(naming: BlockNaming): string {
  return `${naming.prefix}${MOUNTED_FLAG_NAME}`;
}

const HEX8 = /^[0-9a-f]{8}$/;

/**
 * Parses a key back to its block number, strictly as upstream does: the prefix, then (when
 * hashing) the right hash and a dash, then exactly 8 lowercase hex digits below numBlocks.
 * Anything else (temp files, the mounted flag, other data) gives undefined.
 */
export function parseBlockKey(naming: BlockNaming, key: string, numBlocks: number): number | undefined {
  if (!key.startsWith(naming.prefix)) return undefined;
  let rest = key.slice(naming.prefix.length);
  let expectedHash: string | undefined;
  if (naming.blockHashPrefix) {
    if (rest.length !== 17 || rest[8] !== '-') return undefined;
    expectedHash = rest.slice(0, 8);
    rest = rest.slice(9);
  }
  if (!HEX8.test(rest)) return undefined;
  const blockNum = parseInt(rest, 16);
  if (blockNum >= numBlocks) return undefined;
  if (expectedHash !== undefined && expectedHash !== hex8(blockHash(blockNum))) return undefined;
  return blockNum;
}
