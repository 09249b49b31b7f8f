// What `npm publish` would ship, installed as a user would: the main package and this machine's
// platform package (linux-x64-gnu, linux-arm64-gnu or linux-x64-musl) are packed with `npm pack`, installed together from the two
// tarballs into a fresh global prefix with no build tool reachable, and the installed copy (not
// this checkout) mounts a --test disk, stores data and reads it back.
//   node --test __test__/packaging.test.mjs
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { access, chmod, copyFile, mkdir, open, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO, workdir, isMounted, run, runCommand, startMount } from './helpers/ours.mjs';
import { withPlatformPackages } from '../scripts/platform-packages.mjs';

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
/** musl (Alpine) or glibc, as napi-rs's loader tells them apart: Node reports a glibc version only on glibc. */
const MUSL = !process.report.getReport().header.glibcVersionRuntime;
/** This machine's platform package, as napi-rs names it. */
const PLATFORM = `linux-${process.arch}-${MUSL ? 'musl' : 'gnu'}`;
const PLATFORM_DIR = join(REPO, 'npm', PLATFORM);
const platformPkg = JSON.parse(readFileSync(join(PLATFORM_DIR, 'package.json'), 'utf8'));
const BINARY = `s3backer.${PLATFORM}.node`;
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/** A command's result; npm runs get minutes, not the helpers' default minute. */
const exec = (cmd, args, { cwd = REPO, env = process.env, timeoutMs = 300000 } = {}) => runCommand(cmd, args, { cwd, env, timeoutMs });

/** `npm pack --json` of a package directory (the checkout by default): the tarball's path and file list. */
async function npmPack(dest, dir = REPO) {
  const res = await exec('npm', ['pack', '--json', '--pack-destination', dest, dir]);
  assert.equal(res.code, 0, `npm pack ${dir} failed:\n${res.stderr}`);
  const [info] = JSON.parse(res.stdout);
  return { tarball: join(dest, info.filename), files: info.files.map((f) => f.path).sort(), info };
}

test('npm pack: the main package ships what runs and nothing else; the platform package ships the binary', async () => {
  assert.ok(existsSync(join(REPO, 'dist', 'cli', 'main.js')), 'dist/ is built (npm run build:ts)');
  assert.ok(existsSync(join(REPO, 'native', BINARY)), `native/${BINARY} is built (npm run build:native)`);
  assert.equal(platformPkg.version, pkg.version, 'the platform package has the main package version');
  // Added when it is published (scripts/platform-packages.mjs), not before: npm ci would look for them.
  assert.equal(pkg.optionalDependencies, undefined, 'the checked-in package.json names no platform package');
  const published = withPlatformPackages(pkg);
  assert.deepEqual(published.optionalDependencies, {
    's3backer-linux-arm64-gnu': pkg.version,
    's3backer-linux-x64-gnu': pkg.version,
    's3backer-linux-x64-musl': pkg.version,
  });
  assert.equal(
    published.optionalDependencies[platformPkg.name],
    platformPkg.version,
    'as published, it depends on exactly this platform package',
  );
  assert.deepEqual(pkg.man, ['./man/s3backer.1']);
});

/** The Node.js binaries scripts/setup.sh unpacked into .cache/node (22, 24, 26), oldest first. */
async function nodeBinaries() {
  const dir = join(REPO, '.cache', 'node');
  const versions = existsSync(dir) ? await readdir(dir) : [];
  return versions
    .filter((v) => existsSync(join(dir, v, 'bin', 'node')))
    .sort((a, b) => Number(a.split('.')[0]) - Number(b.split('.')[0]))
    .map((v) => ({ version: v, bin: join(dir, v, 'bin', 'node') }));
}

/** The highest `GLIBC_x.y[.z]` symbol version a binary needs, from its dynamic symbol table. */
async function glibcFloor(file) {
  const r = await exec('objdump', ['-T', file]);
  assert.equal(r.code, 0, `objdump -T (binutils): ${r.stderr}`);
  const versions = [...r.stdout.matchAll(/\bGLIBC_(\d+)\.(\d+)(?:\.(\d+))?\b/g)].map((m) => [
    Number(m[1]),
    Number(m[2]),
    Number(m[3] ?? 0),
  ]);
  assert.ok(versions.length > 0, 'the binary names glibc symbol versions');
  return versions.reduce((a, b) => (a[0] !== b[0] ? (a[0] > b[0] ? a : b) : a[1] !== b[1] ? (a[1] > b[1] ? a : b) : a[2] >= b[2] ? a : b));
}

test(
  'the native core loads on glibc 2.17 and later (RHEL/Alma/Rocky 8, Amazon Linux 2, Debian 11, Ubuntu 20.04)',
  { skip: MUSL && 'a musl build: no glibc symbols' },
  async () => {
    const file = join(REPO, 'native', BINARY);
    const [major, minor, patch] = await glibcFloor(file);
    assert.ok(
      major < 2 || (major === 2 && minor <= 17),
      `native/${BINARY} needs GLIBC_${major}.${minor}${patch ? `.${patch}` : ''}: build it with npm run build:native (glibc 2.17 toolchain), not against this machine's glibc`,
    );
    // Its C parts (zstd) were built by that toolchain's gcc too: no libstdc++ symbols to carry a floor of their own.
    const symbols = await exec('objdump', ['-T', file]);
    assert.doesNotMatch(symbols.stdout, /GLIBCXX_/);
  },
);

test('installed from the two tarballs with no build tools: --version, a --test mount, the man page', { timeout: 600000 }, async (t) => {
  const w = await workdir('packaging');
  const packDir = join(w.root, 'pack');
  const prefix = join(w.root, 'prefix');
  const fakeBin = join(w.root, 'no-build-tools');
  const marker = join(w.root, 'build-tool-called');
  const stagedBinary = join(PLATFORM_DIR, BINARY);
  const hadStagedBinary = existsSync(stagedBinary);
  let child;
  try {
    await mkdir(packDir);
    await mkdir(prefix);

    // Move the built addon into the platform package, as the release workflow does.
    const artifacts = await exec('npm', ['run', '--silent', 'artifacts']);
    assert.equal(artifacts.code, 0, `npm run artifacts failed:\n${artifacts.stderr}`);

    // The main package as the release workflow publishes it: the checkout's files, and its
    // package.json with the platform packages as optional dependencies.
    const plain = await npmPack(packDir);
    await rm(plain.tarball);
    const stage = join(w.root, 'stage');
    for (const p of plain.files.filter((f) => f !== 'package.json')) {
      await mkdir(dirname(join(stage, p)), { recursive: true });
      await copyFile(join(REPO, p), join(stage, p));
    }
    await writeFile(join(stage, 'package.json'), `${JSON.stringify(withPlatformPackages(pkg), null, 2)}\n`);
    const main = await npmPack(packDir, stage);
    const platform = await npmPack(packDir, PLATFORM_DIR);
    t.diagnostic(`main tarball: ${main.files.length} files, ${main.info.size} bytes; platform tarball: ${platform.info.size} bytes`);

    // The platform package: the binary (the one just built), its manifest and README.
    assert.deepEqual(platform.files, ['README.md', BINARY, 'package.json'].sort());
    assert.equal(platform.info.name, platformPkg.name);
    assert.equal(platform.info.version, pkg.version);

    // The main package: compiled JS and its types, the napi-rs loader, the man page, README,
    // LICENSE if there is one. No tests, sources, Rust, benchmarks, source maps or binaries.
    const allowed = (p) =>
      ['package.json', 'README.md', 'CHANGELOG.md', 'man/s3backer.1', 'native/index.js', 'native/index.d.ts'].includes(p) ||
      /^LICEN[CS]E(\.\w+)?$/i.test(p) ||
      /^dist\/.+\.(js|d\.ts)$/.test(p);
    assert.deepEqual(
      main.files.filter((p) => !allowed(p)),
      [],
      'unexpected files in the main package',
    );
    for (const p of [
      'dist/cli/main.js',
      'dist/cli/s3backer.bundle.js',
      'dist/index.js',
      'dist/index.d.ts',
      'native/index.js',
      'man/s3backer.1',
      'README.md',
      'CHANGELOG.md',
    ]) {
      assert.ok(main.files.includes(p), `${p} is in the main package`);
    }
    if (existsSync(join(REPO, 'LICENSE'))) assert.ok(main.files.includes('LICENSE'));
    // Every compiled file has its source: a stale dist/ would ship code that no longer exists.
    // (The command's bundle is built from them by scripts/bundle-cli.mjs.)
    const stale = main.files
      .filter((p) => /^dist\/.+\.js$/.test(p) && p !== 'dist/cli/s3backer.bundle.js')
      .filter((p) => !existsSync(join(REPO, 'src', p.slice('dist/'.length).replace(/\.js$/, '.ts'))));
    assert.deepEqual(stale, [], 'compiled files without a source in src/ (stale dist/: rebuild it)');

    // Build tools that must not be reached: each records its call and fails.
    await mkdir(fakeBin);
    for (const tool of ['cargo', 'rustc', 'rustup', 'node-gyp', 'make', 'cc', 'gcc', 'g++', 'c++', 'clang', 'python', 'python3']) {
      const file = join(fakeBin, tool);
      await writeFile(file, `#!/bin/sh\necho "${tool} $*" >> '${marker}'\nexit 1\n`);
      await chmod(file, 0o755);
    }
    const installEnv = { ...process.env, PATH: `${fakeBin}:${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
    for (const k of Object.keys(installEnv)) {
      if (/^npm_config_(build_from_source|prefix|global)$/i.test(k)) delete installEnv[k];
    }
    const started = Date.now();
    const install = await exec(
      'npm',
      [
        'i',
        '-g',
        '--prefix',
        prefix,
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--foreground-scripts',
        platform.tarball,
        main.tarball,
      ],
      { cwd: w.root, env: installEnv },
    );
    const output = `${install.stdout}\n${install.stderr}`;
    if (
      install.code !== 0 &&
      /E(NOTFOUND|AI_AGAIN|CONNREFUSED|CONNRESET|TIMEDOUT|NETUNREACH)|network/i.test(output) &&
      !/E404/.test(output)
    ) {
      t.skip(
        `the npm registry is not reachable from here, so the dependencies (@aws-sdk/*, commander) cannot be installed: ${output.trim().split('\n').slice(-3).join(' | ')}`,
      );
      return;
    }
    assert.equal(install.code, 0, `npm i -g failed:\n${output}`);
    t.diagnostic(`npm i -g took ${Date.now() - started} ms`);

    // Nothing was compiled.
    assert.ok(!existsSync(marker), `a build tool was called during install: ${existsSync(marker) ? await readFile(marker, 'utf8') : ''}`);
    assert.doesNotMatch(
      output,
      /gyp (info|ERR!|WARN)|node-gyp rebuild|Compiling |cargo build|napi build/,
      'no compile in the install output',
    );
    const installed = join(prefix, 'lib', 'node_modules', pkg.name);
    assert.ok(existsSync(join(installed, 'dist', 'cli', 'main.js')));
    assert.ok(!existsSync(join(installed, 'native', 'target')), 'no native/target in the installed package');
    assert.ok(!existsSync(join(installed, 'target')), 'no target/ in the installed package');
    const installedNative = await readdir(join(installed, 'native'));
    assert.deepEqual(
      installedNative.filter((n) => n.endsWith('.node')),
      [],
      'the main package carries no binary',
    );

    // The platform package came from our tarball and satisfies the optional dependency (deduped,
    // not fetched again under s3backer/node_modules).
    const platformInstalled = join(prefix, 'lib', 'node_modules', platformPkg.name);
    const installedBinary = await readFile(join(platformInstalled, BINARY));
    assert.equal(
      sha256(installedBinary),
      sha256(await readFile(join(REPO, 'native', BINARY))),
      'the installed binary is the one built here',
    );
    assert.ok(!existsSync(join(installed, 'node_modules', platformPkg.name)), 'no second copy of the platform package');
    const ls = await exec('npm', ['ls', '-g', '--prefix', prefix, '--all'], { cwd: w.root, env: installEnv });
    assert.match(ls.stdout, new RegExp(`${platformPkg.name}@${pkg.version.replace(/\./g, '\\.')} deduped`), ls.stdout);

    // The command and the man page.
    const bin = join(prefix, 'bin', 's3backer');
    assert.match(await readlink(bin), /s3backer\/dist\/cli\/main\.js$/);
    const runEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
    delete runEnv.NAPI_RS_NATIVE_LIBRARY_PATH;
    delete runEnv.NODE_PATH;
    const version = await exec(bin, ['--version'], { cwd: w.root, env: runEnv, timeoutMs: 30000 });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), `s3backer version ${pkg.version}`);
    // The mount(8) helper is installed and runs (no arguments: its usage, exit 1).
    const helper = join(prefix, 'bin', 'mount.s3backer');
    assert.match(await readlink(helper), /s3backer\/dist\/cli\/mountHelper\.js$/);
    const usage = await exec(helper, [], { cwd: w.root, env: runEnv, timeoutMs: 30000 });
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /usage: mount\.s3backer bucket mountpoint/);
    const manPage = join(prefix, 'share', 'man', 'man1', 's3backer.1');
    await access(manPage);
    assert.equal(await readFile(manPage, 'utf8'), await readFile(join(REPO, 'man', 's3backer.1'), 'utf8'));

    // The public API by the package's name, and nothing below it: internals are not an interface.
    const api = await exec(
      process.execPath,
      [
        '-e',
        `const s = require('s3backer');
         let deep;
         try { require('s3backer/dist/layers/blockCache'); deep = 'reachable'; } catch (e) { deep = e.code; }
         console.log(JSON.stringify({ mount: typeof s.mount, inspect: typeof s.inspectCacheFile, version: s.version, pkg: require('s3backer/package.json').version, deep }));`,
      ],
      { cwd: w.root, env: { ...runEnv, NODE_PATH: join(prefix, 'lib', 'node_modules') } },
    );
    assert.equal(api.code, 0, api.stderr);
    assert.deepEqual(JSON.parse(api.stdout), {
      mount: 'function',
      inspect: 'function',
      version: pkg.version,
      pkg: pkg.version,
      deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    });
    assert.ok((await stat(join(installed, 'dist', 'index.d.ts'))).size > 0, 'the types the exports map names');

    // The installed copy on each Node.js release line it supports (setup.sh unpacks 22, 24 and 26
    // into .cache/node): its version, and a --test mount that stores and reads back.
    const nodes = await nodeBinaries();
    t.diagnostic(`Node.js versions run: ${nodes.map((n) => n.version).join(', ') || 'this one only'}`);
    for (const { version: v, bin: nodeBin } of nodes) {
      const cli = [nodeBin, join(installed, 'dist', 'cli', 'main.js')];
      const says = await exec(cli[0], [cli[1], '--version'], { cwd: w.root, env: runEnv, timeoutMs: 30000 });
      assert.equal(says.stdout.trim(), `s3backer version ${pkg.version}`, `on Node.js ${v}: ${says.stderr}`);
      const store = join(w.root, `store-${v}`);
      await mkdir(store);
      const m = await startMount(['--test', '--size=1m', '--blockSize=64k', store, w.mnt], w.mnt, {
        command: cli,
        cwd: w.root,
        env: runEnv,
      });
      const data = randomBytes(128 * 1024);
      const fh = await open(join(w.mnt, 'file'), 'r+');
      try {
        await fh.write(data, 0, data.length, 64 * 1024);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await run('umount', [w.mnt]);
      assert.deepEqual(await m.exited, { code: 0, signal: null }, `on Node.js ${v}: ${m.stderr()}`);
      const stored = await Promise.all(['00000001', '00000002'].map((k) => readFile(join(store, k))));
      assert.ok(Buffer.concat(stored).equals(data), `on Node.js ${v}: the stored blocks hold the data`);
    }

    // A --test mount served by the installed copy (its native core from the platform package).
    const mounted = await startMount(['--test', '--size=2m', '--blockSize=64k', w.store, w.mnt], w.mnt, {
      command: [bin],
      cwd: w.root,
      env: runEnv,
    });
    child = mounted.child;
    const file = join(w.mnt, 'file');
    assert.equal((await stat(file)).size, 2 * 2 ** 20);
    const data = randomBytes(192 * 1024);
    const offset = 128 * 1024; // blocks 2, 3 and 4
    const fh = await open(file, 'r+');
    try {
      await fh.write(data, 0, data.length, offset);
      await fh.sync();
      const back = Buffer.alloc(data.length);
      await fh.read(back, 0, back.length, offset);
      assert.ok(back.equals(data), 'read back through the mount');
    } finally {
      await fh.close();
    }
    await run('umount', [w.mnt]);
    assert.deepEqual(await mounted.exited, { code: 0, signal: null }, mounted.stderr());
    assert.equal(await isMounted(w.mnt), false);
    const stored = (await readdir(w.store)).filter((n) => !n.startsWith('.')).sort();
    assert.ok(!stored.includes('s3backer-mounted'), 'the mounted flag is cleared');
    for (const k of ['00000002', '00000003', '00000004']) assert.ok(stored.includes(k), `block ${k} stored: ${stored}`);
    assert.deepEqual(
      stored.filter((k) => !['00000000', '00000002', '00000003', '00000004'].includes(k)),
      [],
      'only the blocks written (and block 0)',
    );
    const blocks = await Promise.all(['00000002', '00000003', '00000004'].map((k) => readFile(join(w.store, k))));
    assert.ok(Buffer.concat(blocks).equals(data), 'the stored blocks hold the data');
    child = undefined;
  } finally {
    if (child) child.kill('SIGKILL');
    if (!hadStagedBinary) await rm(stagedBinary, { force: true });
    await w.cleanup();
  }
});
