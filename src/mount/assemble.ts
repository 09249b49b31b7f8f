// The second step of a mount: the block stack over the checked store, with its cache file opened
// and what that file kept taken over (dirty blocks recovered only for the mount that wrote them,
// clean ones verified). Nothing is marked mounted yet.

import type { Config } from '../config/config';
import { openCacheFile, type OpenedCacheFile } from '../layers/cacheFile';
import type { Logger } from '../util/log';
import { createProgress } from '../util/progress';
import type { Preflight } from './preflight';
import { buildStack, cacheSlots, type Stack } from './stack';

export interface Assembled {
  readonly stack: Stack;
  readonly cacheFile: OpenedCacheFile | undefined;
}

export async function assemble(config: Config, checked: Preflight, log: Logger): Promise<Assembled> {
  const { geometry, objects, naming, ownCrash } = checked;
  const cacheConfig = config.blockCache;
  // Dirty blocks are uploaded only for the mount that wrote them: anything else may be stale.
  const recover = cacheConfig.recoverDirty && !config.readOnly && ownCrash;
  const cacheFile =
    cacheConfig.file === undefined
      ? undefined
      : openCacheFile(cacheConfig.file, geometry.blockSize, cacheSlots(cacheConfig.size, geometry.numBlocks), log, {
          advise: cacheConfig.fileAdvise,
          // Its dirty blocks are to be uploaded: a resize must not leave any out.
          keepDirty: recover,
        });

  const stack = buildStack(
    objects,
    {
      ...naming,
      blockSize: geometry.blockSize,
      numBlocks: geometry.numBlocks,
      defaultContentEncoding: config.defaultContentEncoding,
      blockCache: cacheConfig,
      codec: checked.codec,
      encodeWrites: config.codec.compression !== undefined || config.codec.cipher !== undefined,
      ecProtect: config.ecProtect && {
        ...config.ecProtect,
        initialRetryPauseMs: config.initialRetryPauseMs,
        maxRetryPauseMs: config.maxRetryPauseMs,
      },
      sharedDisk: config.sharedDiskMode,
    },
    checked.httpStats,
    log,
    cacheFile?.slots,
  );
  if (cacheFile && stack.blockCache && cacheFile.entries.length > 0) {
    const dirtyFound = cacheFile.entries.filter((e) => e.dirty).length;
    if (dirtyFound > 0 && cacheConfig.recoverDirty && !recover) {
      log.warn(`cache file ${cacheConfig.file}: its mount token does not match the bucket's; not recovering its dirty blocks`);
    }
    const verifying = createProgress('cached blocks verified', undefined, { quiet: config.quiet });
    const r = await stack.blockCache
      .restore({ verify: !cacheConfig.noVerify, recoverDirty: recover, onProgress: verifying.update })
      .finally(verifying.finish);
    log.info(
      `cache file ${cacheConfig.file}: ${r.clean} clean blocks reused (${stack.blockCache.verified} verified, ` +
        `${stack.blockCache.mismatch} refreshed), ${r.dirty} dirty blocks to upload`,
    );
    if (r.discarded > 0) {
      log.warn(
        `cache file ${cacheConfig.file}: discarded ${r.discarded} dirty blocks a previous mount had not uploaded` +
          (cacheConfig.recoverDirty ? '' : ' (--blockCacheRecoverDirtyBlocks would upload them)'),
      );
    }
  }
  return { stack, cacheFile };
}
