// Opens the object store a configuration names: a directory with --test, otherwise S3.

import type { Config } from '../config/config';
import { DirObjectStore } from '../backend/dirObjectStore';
import { FaultyObjectStore } from '../backend/faultyObjectStore';
import { S3ObjectStore } from '../backend/s3/s3ObjectStore';
import { resolveCredentials } from '../backend/s3/credentials';
import type { HttpStats } from '../backend/httpStats';
import type { ObjectStore } from '../backend/objectStore';
import type { Logger } from '../util/log';

/** Requests in flight besides uploads: demand reads and read-ahead never queue behind them all. */
const READ_CONCURRENCY = 32;

export function openObjects(config: Config, stats: HttpStats, log: Logger): ObjectStore {
  if (config.test) {
    const dir = new DirObjectStore(config.bucket);
    return config.testFaults ? new FaultyObjectStore(dir, config.testFaults, config, stats, log) : dir;
  }
  const credentials = resolveCredentials(config);
  log.debug(
    `credentials: ${credentials.kind === 'static' ? `access ID ${credentials.accessKeyId} from ${credentials.from}` : credentials.kind}`,
  );
  // The store takes the S3 settings straight from the configuration.
  return new S3ObjectStore({ ...config, credentials, concurrency: config.blockCache.threads + READ_CONCURRENCY }, stats, log);
}
