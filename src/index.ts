// The programmatic API: mount a bucket from code, and the pieces of the format for tools.

export { mount, type MountHandle } from './mount/mount';
export { buildConfig, ConfigError, type Config, type ParsedArgs } from './config/config';
export { parseCommandLine } from './cli/parseArgs';
export { parseSize, formatSize } from './config/sizes';
export { blockKey, blockHash, parseBlockKey, mountedFlagKey } from './format/blockNames';
export { createLogger, type Logger } from './util/log';
export type { BlockStore } from './store/blockStore';
export { version } from './version';
export { inspectCacheFile, formatCacheReport, type CacheFileReport } from './tools/inspectCache';
