#!/usr/bin/env node
// npm run artifacts: each built core in native/ (s3backer.<platform>.node) into its platform
// package, npm/<platform>/, as the release workflow publishes them.
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = readdirSync(join(REPO, 'native')).filter((f) => /^s3backer\.[\w-]+\.node$/.test(f));
if (built.length === 0) {
  console.error('artifacts: no native/s3backer.<platform>.node: run npm run build:native first');
  process.exit(1);
}
for (const file of built) {
  const platform = file.slice('s3backer.'.length, -'.node'.length);
  const dir = join(REPO, 'npm', platform);
  if (!existsSync(join(dir, 'package.json'))) {
    console.error(`artifacts: ${file} has no platform package npm/${platform}`);
    process.exit(1);
  }
  copyFileSync(join(REPO, 'native', file), join(dir, file));
}
