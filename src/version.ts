// The package version, read once from package.json so there is one source of truth.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export const version: string = (JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string })
  .version;
