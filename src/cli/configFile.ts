// --configFile=FILE (also -F FILE, and configFile=FILE inside -o): replaced by the arguments in
// FILE, one per line, blank lines and #-comments skipped. Files may name further files.

import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors';

const MAX_NESTING = 10;

export function parseConfigFileText(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

function readArgs(file: string): string[] {
  try {
    return parseConfigFileText(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function expandConfigFiles(argv: readonly string[], depth = 0): string[] {
  const out: string[] = [];
  const include = (file: string): void => {
    if (depth >= MAX_NESTING) throw new ConfigError(`too many levels of --configFile nesting (at ${file})`);
    out.push(...expandConfigFiles(readArgs(file), depth + 1));
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (arg.startsWith('--configFile=')) include(arg.slice('--configFile='.length));
    else if (arg === '--configFile' || arg === '-F') {
      const file = argv[++i];
      if (file === undefined) throw new ConfigError(`${arg} needs a file name`);
      include(file);
    } else if (arg.startsWith('-F') && arg.length > 2) include(arg.slice(2));
    else if (arg === '-o' || (arg.startsWith('-o') && !arg.startsWith('--'))) {
      // configFile=FILE may also hide among -o items, as fstab lines put it.
      const value = arg === '-o' ? argv[++i] : arg.slice(2);
      if (value === undefined) throw new ConfigError('-o needs a value');
      const items = value.split(',');
      const kept = items.filter((item) => !item.startsWith('configFile='));
      if (kept.length > 0) out.push('-o', kept.join(','));
      for (const item of items) if (item.startsWith('configFile=')) include(item.slice('configFile='.length));
    } else out.push(arg);
  }
  return out;
}
