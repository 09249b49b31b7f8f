#!/usr/bin/env node
// The platform packages (npm/<platform>/, each holding one prebuilt native core) become the main
// package's optionalDependencies only when it is published, as napi-rs's prepublish step does:
// listed in the checked-in package.json, `npm ci` would look for versions the registry does not
// have yet, and npm refuses a workspace built for another CPU. So the release workflow runs this
// with --write just before publishing, and the packaging test packs the same result.
//   node scripts/platform-packages.mjs --write
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Every npm/<platform>/ package: its directory, name and version. */
export function platformPackages(repo = REPO) {
  const root = join(repo, 'npm');
  return readdirSync(root)
    .filter((d) => existsSync(join(root, d, 'package.json')))
    .sort()
    .map((d) => {
      const pkg = JSON.parse(readFileSync(join(root, d, 'package.json'), 'utf8'));
      return { dir: join(root, d), platform: d, name: pkg.name, version: pkg.version };
    });
}

/** The main package.json as published: each platform package an optional dependency at its version. */
export function withPlatformPackages(pkg, repo = REPO) {
  const optionalDependencies = { ...pkg.optionalDependencies };
  for (const p of platformPackages(repo)) optionalDependencies[p.name] = p.version;
  return { ...pkg, optionalDependencies };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.argv.includes('--write')) {
    console.error(
      'usage: node scripts/platform-packages.mjs --write   (adds the platform packages to package.json as optionalDependencies)',
    );
    process.exit(2);
  }
  const file = join(REPO, 'package.json');
  const pkg = withPlatformPackages(JSON.parse(readFileSync(file, 'utf8')));
  writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
  console.log(
    `optionalDependencies: ${Object.entries(pkg.optionalDependencies)
      .map(([n, v]) => `${n}@${v}`)
      .join(', ')}`,
  );
}
