// The programmatic API: mount a bucket from code, and the pieces of the format for tools.

export { mount, configFor, type MountOptions, type MountHandle, type FlagValue } from './api/mount';
/** Mounting from a Config built by buildConfig (what the CLI does), with your own Logger. */
export { mount as mountWithConfig } from './mount/mount';
export { FLAGS, type FlagSpec } from './config/flags';
export { UserError, ConfigError, UsageError, StoreError, RetriesExhaustedError } from './errors';
export { buildConfig, type Config, type ParsedArgs } from './config/config';
export { parseCommandLine } from './cli/parseArgs';
export { parseSize, formatSize } from './util/sizes';
export { blockKey, blockHash, parseBlockKey, mountedFlagKey } from './format/blockNames';
export { createLogger, type Logger } from './util/log';
export type { BlockStore } from './store/blockStore';
export { version } from './version';
export { inspectCacheFile, formatCacheReport, type CacheFileReport } from './tools/inspectCache';
export type { StatsJSON } from './stats/prometheus';
