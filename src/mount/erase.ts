// --erase: delete every block of the disk and the mounted flag. Asks first unless --force,
// reading the answer from standard input whatever it is (as upstream: `echo y | s3backer --erase`
// works in a script); no answer (standard input closed or ended) is a no.

import * as readline from 'node:readline';
import type { Config } from '../config/config';
import { ConfigError } from '../config/config';
import { HttpStats } from '../backend/httpStats';
import { MAX_BLOCKS, parseBlockKey } from '../format/blockNames';
import { openObjects } from './openObjects';
import { clearMountedFlag, readMountedFlag } from './mountedFlag';
import { createProgress } from '../util/progress';
import type { Logger } from '../util/log';

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
      const yes = await io.confirm(`Erase all ${keys.length} blocks of ${objects.description}? This cannot be undone. [y/N] `);
      if (yes === undefined) {
        throw new ConfigError(`not erased: no answer on standard input (--force erases the ${keys.length} blocks without asking)`);
      }
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
