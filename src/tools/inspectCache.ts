// `s3backer cache inspect FILE`: what a block cache file holds, read without changing it, so it
// works while the disk is not mounted (and is safe while it is).

import { readCacheFile, type SlotEntry } from '../native/addon';
import { formatSize } from '../util/sizes';

export interface CacheFileReport {
  readonly file: string;
  /** "dcache": upstream's format (what both programs write); "dcache-old" or "s3bc": older ones a mount converts. */
  readonly format: string;
  /** 2 for upstream's current format, 1 for the older ones. */
  readonly version: number;
  /** The header's own fields, as upstream's dcache.c lays them out. */
  readonly signature: string;
  readonly headerSize: number;
  readonly flags: number;
  readonly dataAlign: number;
  readonly entrySize: number;
  readonly blockSize: number;
  readonly slots: number;
  /** Token of the mount that last used the file (8 hex digits; 00000000 = never mounted). */
  readonly mountToken: string;
  readonly used: number;
  readonly dirty: number;
  readonly clean: number;
  readonly free: number;
  /** Cached block numbers as ranges, e.g. ["0-15", "100"]. */
  readonly blockRanges: readonly string[];
  readonly dirtyRanges: readonly string[];
  /** Byte offset in the file where slot 0's data begins (slot k's is dataOffset + k * blockSize). */
  readonly dataOffset: number;
  /** Used slots; `dataOffset` is where that slot's block data lies in the file. */
  readonly entries: ReadonlyArray<SlotEntry & { readonly dataOffset: number }>;
}

function ranges(blocks: readonly number[]): string[] {
  const sorted = [...blocks].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] ?? 0) + 1) j++;
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out;
}

/** Reads a cache file's header and slot table; throws a clear error for a foreign or damaged file. */
export function inspectCacheFile(path: string): CacheFileReport {
  const { header, entries } = readCacheFile(path);
  const dirty = entries.filter((e) => e.dirty);
  const { dataOffset } = header;
  return {
    file: path,
    format: header.format,
    version: header.version,
    signature: header.magic.toString(16).padStart(8, '0'),
    headerSize: header.headerSize,
    flags: header.flags,
    dataAlign: header.dataAlign,
    entrySize: header.entrySize,
    blockSize: header.blockSize,
    slots: header.numSlots,
    mountToken: header.mountToken.toString(16).padStart(8, '0'),
    used: entries.length,
    dirty: dirty.length,
    clean: entries.length - dirty.length,
    free: header.numSlots - entries.length,
    blockRanges: ranges(entries.map((e) => e.block)),
    dirtyRanges: ranges(dirty.map((e) => e.block)),
    dataOffset,
    entries: entries.map((e) => ({ ...e, dataOffset: dataOffset + e.slot * header.blockSize })),
  };
}

const FORMAT_TEXT: Readonly<Record<string, string>> = {
  dcache: "s3backer cache file, upstream's format",
  'dcache-old': "s3backer cache file, upstream's old format (converted at mount)",
  s3bc: 's3backer cache file, the format of earlier versions of ours (converted at mount)',
};

export function formatCacheReport(r: CacheFileReport, opts: { blocks: boolean }): string {
  const lines = [
    `cache file   ${r.file}`,
    `format       ${FORMAT_TEXT[r.format] ?? r.format} (signature ${r.signature}, version ${r.version})`,
    `header       ${r.headerSize} bytes, flags 0x${r.flags.toString(16)}, ${r.entrySize}-byte entries, data aligned to ${r.dataAlign} at ${r.dataOffset}`,
    `block size   ${r.blockSize} (${formatSize(r.blockSize)})`,
    `slots        ${r.slots} (${formatSize(r.slots * r.blockSize)} of data)`,
    `mount token  ${r.mountToken}`,
    `used         ${r.used} (${r.clean} clean, ${r.dirty} dirty), ${r.free} free`,
    `blocks       ${r.blockRanges.join(', ') || '(none)'}`,
    `dirty        ${r.dirtyRanges.join(', ') || '(none)'}`,
  ];
  if (opts.blocks) {
    lines.push('', 'slot      block     state  etag');
    for (const e of [...r.entries].sort((a, b) => a.slot - b.slot)) {
      lines.push(`${String(e.slot).padEnd(9)} ${e.block.toString(16).padStart(8, '0')}  ${e.dirty ? 'dirty' : 'clean'}  ${e.etag}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
