// --erase: delete every block of the disk and the mounted flag. Asks first unless --force,
// reading the answer from standard input whatever it is (as upstream: `echo y | s3backer --erase`
// works in a script); no answer (standard input closed or ended) is a no.

import * as readline from 'node:readline';
import type { Config } from '../config/config';
import { DEFAULT_BLOCK_SIZE } from '../config/config';
import { HttpStats } from '../backend/httpStats';
import { MAX_BLOCKS } from '../format/blockNames';
import { listBlockObjects } from '../backend/blockListing';
import { MAX_KEYS_PER_DELETE, type ObjectStore } from '../backend/objectStore';
import { detectGeometry } from './geometry';
import { openObjects } from './openObjects';
import { clearMountedFlag, readMountedFlag } from './mountedFlag';
import { createProgress } from '../util/progress';
import { allSettled, chunksOf } from '../util/batches';
import type { Logger } from '../util/log';
import { ConfigError } from '../errors';

/** The answer to a yes/no question on stderr, read from stdin; undefined when stdin ends first. */
export function askYesNo(question: string): Promise<boolean | undefined> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY === true });
    let answer: boolean | undefined;
    rl.once('line', (line) => {
      answer = /^y(es)?$/i.test(line.trim());
      rl.close();
    });
    rl.once('close', () => resolve(answer));
    rl.setPrompt(question);
    rl.prompt();
  });
}

export interface EraseIO {
  confirm(question: string): Promise<boolean | undefined>;
}

const defaultIO: EraseIO = { confirm: askYesNo };

/** The disk's block count from the flags or block 0; 1 (one lister) when neither tells. */
async function diskBlocks(config: Config, objects: ObjectStore): Promise<number> {
  if (config.blockHashPrefix) return MAX_BLOCKS; // the hash spreads the keys evenly anyway
  // Only a hint for spreading the listers: unreadable geometry is no reason to refuse the erase.
  const detected = config.noAutoDetect ? undefined : await detectGeometry(objects, config).catch(() => undefined);
  const blockSize = config.blockSize ?? detected?.blockSize ?? DEFAULT_BLOCK_SIZE;
  const fileSize = config.size ?? detected?.fileSize;
  return fileSize === undefined ? 1 : Math.max(1, Math.ceil(fileSize / blockSize));
}

/** Returns the number of blocks deleted. */
export async function erase(config: Config, log: Logger, io: EraseIO = defaultIO): Promise<number> {
  const naming = { prefix: config.prefix, blockHashPrefix: config.blockHashPrefix };
  const objects = openObjects(config, new HttpStats(), log);
  try {
    await objects.checkAccess();
    const flag = await readMountedFlag(objects, naming);
    if (flag.mounted && !config.force) {
      throw new ConfigError(`${objects.description} appears to be mounted: unmount it first, or use --force`);
    }
    const keys: string[] = [];
    const listing = createProgress('blocks listed', undefined, { quiet: config.quiet });
    try {
      // Every block key goes, whatever the disk's size: the listers spread over the blocks the
      // disk has (when known) and the last one goes on to the end of the key space.
      const spread = await diskBlocks(config, objects);
      await listBlockObjects(objects, { ...naming, numBlocks: MAX_BLOCKS, spread, threads: config.listBlocksThreads }, (_n, key) => {
        keys.push(key);
        listing.update(keys.length);
      });
    } finally {
      listing.finish();
    }
    if (!config.force) {
      const yes = await io.confirm(`Erase all ${keys.length} blocks of ${objects.description}? This cannot be undone. [y/N] `);
      if (yes === undefined) {
        throw new ConfigError(`not erased: no answer on standard input (--force erases the ${keys.length} blocks without asking)`);
      }
      if (!yes) throw new ConfigError('not erased');
    }
    const progress = createProgress('blocks deleted', keys.length, { quiet: config.quiet });
    let done = 0;
    // One multi-object delete per 1000 keys (the store bounds the requests in flight; all are
    // queued at once), and only after all have ended does a failure end the erase.
    try {
      await allSettled(
        chunksOf(keys, MAX_KEYS_PER_DELETE).map(async (chunk) => {
          await objects.deleteMany(chunk);
          progress.update((done += chunk.length));
        }),
      );
    } finally {
      // Ends the line even on failure, so the error starts on a line of its own.
      progress.finish();
    }
    await clearMountedFlag(objects, naming);
    log.info(`erased ${keys.length} blocks of ${objects.description}`);
    return keys.length;
  } finally {
    objects.close();
  }
}
