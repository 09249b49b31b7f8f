// Mounting from code: the command line's flags as an object, checked by the same rules as the
// CLI (unknown flags, bad values and missing credentials are ConfigErrors before anything mounts).

import { buildConfig, type Config } from '../config/config';
import { FLAG_BY_NAME } from '../config/flags';
import { mount as mountConfig, type MountHandle } from '../mount/mount';
import { createLogger, silentLogger, type Logger } from '../util/log';
import { ConfigError } from '../errors';

export type FlagValue = string | number | boolean;

export interface MountOptions {
  /** `bucket[/subdir]`, or with `flags: { test: true }` the directory that stands in for it. */
  readonly bucket: string;
  /** An existing, empty directory. */
  readonly mountpoint: string;
  /**
   * Any flag of the command line by its name without dashes, e.g. `{ blockSize: '256k',
   * size: '1g', readOnly: true, blockCacheSize: 2000 }`. `true` gives a flag without a value;
   * `false` or undefined leaves it out.
   */
  readonly flags?: Readonly<Record<string, FlagValue | undefined>>;
  /** FUSE options, as `-o` would pass them (`allow_other`, ...). */
  readonly fuseOptions?: readonly string[];
  /** Where log lines go: a Logger, 'stderr' (as the CLI writes them) or 'silent' (the default). */
  readonly log?: Logger | 'stderr' | 'silent';
}

export type { MountHandle };

/** The configuration `mount` would use, without mounting: for checking options up front. */
export function configFor(options: MountOptions): Config {
  const flags: Record<string, string | boolean> = {};
  for (const [name, value] of Object.entries(options.flags ?? {})) {
    if (value === undefined || value === false) continue;
    const spec = FLAG_BY_NAME.get(name);
    if (spec === undefined)
      throw new ConfigError(`unknown option ${name}${name.startsWith('-') ? ' (give flag names without dashes)' : ''}`);
    if (spec.kind === 'boolean' && value !== true) throw new ConfigError(`${name} takes no value: give true or leave it out`);
    if (spec.kind === 'value' && value === true) throw new ConfigError(`${name} needs a value`);
    // An optional value given as true means the flag alone (its default value), as `--compress`.
    flags[name] = value === true ? (spec.kind === 'optionalValue' ? '' : true) : String(value);
  }
  const config = buildConfig({
    flags,
    positionals: [options.bucket, options.mountpoint],
    foreground: true,
    debug: flags['debug'] === true,
    fuseOptions: options.fuseOptions ?? [],
  });
  if (config.mode !== 'mount') throw new ConfigError('mount() mounts: erase and reset-mounted-flag are command-line modes');
  return config;
}

/**
 * Mounts a bucket as the CLI does (in this process; no daemon). The handle's `unmount()`
 * flushes every write to the store and clears the mounted flag; `closed` resolves however the
 * mount ends (also by `fusermount -u` from outside).
 */
export async function mount(options: MountOptions): Promise<MountHandle> {
  const config = configFor(options);
  const log =
    options.log === undefined || options.log === 'silent'
      ? silentLogger
      : options.log === 'stderr'
        ? createLogger({ debug: config.debug, quiet: config.quiet })
        : options.log;
  return mountConfig(config, log);
}
