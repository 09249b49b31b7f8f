// --reset-mounted-flag: clear the flag a crashed mount left behind, then exit.

import type { Config } from '../config/config';
import { HttpStats } from '../backend/httpStats';
import { openObjects } from './openObjects';
import { clearMountedFlag, readMountedFlag } from './mountedFlag';
import type { Logger } from '../util/log';

export async function resetMountedFlag(config: Config, log: Logger): Promise<void> {
  const naming = { prefix: config.prefix, blockHashPrefix: config.blockHashPrefix };
  const objects = openObjects(config, new HttpStats(), log);
  try {
    await objects.checkAccess();
    const flag = await readMountedFlag(objects, naming);
    if (!flag.mounted) {
      log.info(`${objects.description}: the mounted flag is not set`);
      return;
    }
    await clearMountedFlag(objects, naming);
    log.info(`${objects.description}: mounted flag cleared`);
  } finally {
    objects.close();
  }
}
