// --erase: delete every block of the disk and the mounted flag. Asks first on a terminal unless
// --force; refuses without a terminal unless --force, so a script never erases by accident.

import * as readline from 'node:readline/promises';
import type { Config } from '../config/config';
import { ConfigError } from '../config/config';
import { HttpStats } from '../backend/httpStats';
import { MAX_BLOCKS, parseBlockKey } from '../format/blockNames';
import { openObjects } from './openObjects';
import { clearMountedFlag, readMountedFlag } from './mountedFlag';
import { createProgress } from '../util/progress';
import type { Logger } from '../util/log';

export async function askYesNo(question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export interface EraseIO {
  readonly interactive: boolean;
  confirm(question: string): Promise<boolean>;
}

const defaultIO: EraseIO = { interactive: process.stdin.isTTY === true, confirm: askYesNo };

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
      await objects.list(config.prefix, (page) => {
        for (const key of page) if (parseBlockKey(naming, key, MAX_BLOCKS) !== undefined) keys.push(key);
        listing.update(keys.length);
      });
    } finally {
      listing.finish();
    }
    if (!config.force) {
      if (!io.interactive) {
        throw new ConfigError(`--erase would delete ${keys.length} blocks of ${objects.description}: add --force to do it without asking`);
      }
      const yes = await io.confirm(`Erase all ${keys.length} blocks of ${objects.description}? This cannot be undone. [y/N] `);
      if (!yes) throw new ConfigError('not erased');
    }
    const progress = createProgress('blocks deleted', keys.length, { quiet: config.quiet });
    let done = 0;
    // The object store bounds the requests in flight; all deletes are queued at once.
    try {
      await Promise.all(
        keys.map(async (key) => {
          await objects.delete(key);
          progress.update(++done);
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
