// The geometry upstream stores as user metadata on block 0, and the mounted flag's token.

export const META_BLOCK_SIZE = 's3backer-blocksize';
export const META_FILE_SIZE = 's3backer-filesize';
export const META_MOUNT_TOKEN = 's3backer-mount-token';

export const BLOCK_CONTENT_TYPE = 'application/x-s3backer-block';
export const FLAG_CONTENT_TYPE = 'text/plain';

export interface Geometry {
  readonly blockSize: number;
  readonly fileSize: number;
}

/** Metadata written with block 0 so later mounts can auto-detect the geometry. */
export function geometryMetadata(g: Geometry): Record<string, string> {
  return { [META_BLOCK_SIZE]: String(g.blockSize), [META_FILE_SIZE]: String(g.fileSize) };
}

/** Reads the geometry back from block 0's metadata; undefined when absent or unreadable. */
export function parseGeometry(metadata: Record<string, string>): Geometry | undefined {
  const bs = metadata[META_BLOCK_SIZE];
  const fs = metadata[META_FILE_SIZE];
  if (bs === undefined || fs === undefined) return undefined;
  if (!/^\d+$/.test(bs.trim()) || !/^\d+$/.test(fs.trim())) return undefined;
  const blockSize = Number(bs.trim());
  const fileSize = Number(fs.trim());
  if (!Number.isSafeInteger(blockSize) || !Number.isSafeInteger(fileSize) || blockSize <= 0) return undefined;
  return { blockSize, fileSize };
}

/** Body of the mounted flag: host name and UTC time, as upstream writes it. */
export function mountedFlagBody(hostname: string, now: Date): string {
  const iso = now.toISOString(); // 2026-11-25T03:18:07.123Z
  const stamp = iso.slice(0, 19).replace(/[-:]/g, '') + 'Z';
  return `${hostname}\n${stamp}\n`;
}
