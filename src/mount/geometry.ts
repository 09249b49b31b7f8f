// Block size and file size for this mount: from the flags, or auto-detected from block 0's
// metadata. A mismatch between the two is fatal unless --force.

import { blockKey, type BlockNaming } from '../format/blockNames';
import { parseGeometry, type Geometry } from '../format/blockMeta';
import { DEFAULT_BLOCK_SIZE, checkGeometry } from '../config/config';
import { formatSize } from '../util/sizes';
import type { ObjectStore } from '../backend/objectStore';
import type { Logger } from '../util/log';
import { ConfigError } from '../errors';

export interface ResolvedGeometry extends Geometry {
  readonly numBlocks: number;
  readonly detected: Geometry | undefined;
}

export interface GeometryFlags {
  readonly blockSize: number | undefined;
  readonly size: number | undefined;
  readonly force: boolean;
}

/** Combines the flags with what block 0 says (detected may be undefined: block 0 absent). */
export function combineGeometry(flags: GeometryFlags, detected: Geometry | undefined, log: Logger): ResolvedGeometry {
  let blockSize = flags.blockSize;
  let fileSize = flags.size;
  if (detected) {
    const clash = (what: string, given: number, found: number): void => {
      const msg = `${what} ${formatSize(given)} differs from the auto-detected ${formatSize(found)}`;
      if (!flags.force) throw new ConfigError(`${msg}: use --force to override`);
      log.warn(`${msg}; using ${formatSize(given)} because of --force`);
    };
    if (blockSize !== undefined && blockSize !== detected.blockSize) clash('--blockSize', blockSize, detected.blockSize);
    if (fileSize !== undefined && fileSize !== detected.fileSize) clash('--size', fileSize, detected.fileSize);
    blockSize ??= detected.blockSize;
    fileSize ??= detected.fileSize;
  }
  blockSize ??= DEFAULT_BLOCK_SIZE;
  if (fileSize === undefined) {
    throw new ConfigError('--size is required: block 0 carries no size meta-data (a new or empty bucket)');
  }
  const numBlocks = checkGeometry(blockSize, fileSize);
  return { blockSize, fileSize, numBlocks, detected };
}

export async function detectGeometry(objects: ObjectStore, naming: BlockNaming): Promise<Geometry | undefined> {
  const head = await objects.head(blockKey(naming, 0));
  return head === null ? undefined : parseGeometry(head.metadata);
}
