// The installed package's directory (package.json, native/), found upward from this code: it runs
// from dist/ as the API and from the CLI's bundle in dist/cli/, at different depths.

import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface PackageJson {
  readonly name: string;
  readonly version: string;
}

let found: { dir: string; json: PackageJson } | undefined;

function find(): { dir: string; json: PackageJson } {
  if (found) return found;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const json = JSON.parse(readFileSync(file, 'utf8')) as PackageJson;
      if (json.name === 's3backer') return (found = { dir, json });
    }
    if (path.dirname(dir) === dir) throw new Error(`s3backer: its package.json is not in ${__dirname} or above`);
  }
}

/** The package's root directory. */
export const packageRoot = (): string => find().dir;

/** The package's package.json, parsed. */
export const packageJson = (): PackageJson => find().json;
