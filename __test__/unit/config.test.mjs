import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { parseCommandLine } from '../../dist/cli/parseArgs.js';
import { buildConfig } from '../../dist/config/config.js';
import { ConfigError } from '../../dist/errors.js';

const require = createRequire(import.meta.url);

/**
 * The parsed arguments of a command line that runs (a test of one that exits fails here).
 * @param {import('../../dist/cli/parseArgs.js').CliResult} cli
 */
function runArgs(cli) {
  if (cli.kind !== 'run') throw new Error(`the command line exits (code ${cli.code}): ${cli.output}`);
  return cli.args;
}

const configOf = (...argv) => {
  const cli = parseCommandLine(argv, '0.0.0');
  assert.equal(cli.kind, 'run');
  return buildConfig(runArgs(cli), { HOME: '/nonexistent-home' });
};

test('upstream --flag=value syntax and defaults', () => {
  const c = configOf('--blockSize=64k', '--size=1g', '--prefix=disk/', 'mybucket', 'mnt');
  assert.equal(c.bucket, 'mybucket');
  assert.equal(c.blockSize, 65536);
  assert.equal(c.size, 2 ** 30);
  assert.equal(c.prefix, 'disk/');
  assert.equal(c.filename, 'file');
  assert.equal(c.statsFilename, 'stats');
  assert.equal(c.fileMode, 0o600);
  assert.equal(c.timeoutMs, 30000);
  assert.equal(c.initialRetryPauseMs, 200);
  assert.equal(c.maxRetryPauseMs, 30000);
  assert.equal(c.mountpoint, `${process.cwd()}/mnt`);
  assert.equal(c.foreground, false);
});

test('bucket/sub/dir becomes a prefix', () => {
  const c = configOf('--size=1m', 'bkt/sub/dir', 'mnt');
  assert.equal(c.bucket, 'bkt');
  assert.equal(c.prefix, 'sub/dir/');
  assert.equal(configOf('--size=1m', '--prefix=x-', 'bkt/sub/', 'mnt').prefix, 'sub/x-');
});

test('--test resolves the directory to an absolute path first', () => {
  const c = configOf('--test', '--size=1m', 'relative/dir', 'mnt');
  assert.equal(c.bucket, `${process.cwd()}/relative/dir`);
});

test('-o items map to flags or FUSE options', () => {
  const c = configOf('-o', 'size=1m,blockSize=4k,allow_other,_netdev,readOnly', 'bkt', 'mnt', '-f');
  assert.equal(c.size, 1 << 20);
  assert.equal(c.blockSize, 4096);
  assert.equal(c.readOnly, true);
  assert.equal(c.fileMode, 0o400);
  assert.deepEqual(c.fuseOptions, ['allow_other']);
  assert.equal(c.foreground, true);
});

test('-d means debug and foreground', () => {
  const c = configOf('-d', '--size=1m', 'bkt', 'mnt');
  assert.equal(c.debug, true);
  assert.equal(c.foreground, true);
});

/** @type {[string[], RegExp][]} */
const bad = [
  [['--blockSize=3000', '--size=1m', 'b', 'm'], /not a power of two/],
  [['--blockSize=4k', '--size=5000', 'b', 'm'], /not a multiple/],
  [['--blockSize=512', '--size=4t', 'b', 'm'], /more than 2\^32/],
  [['--blockSize=256', '--size=1m', 'b', 'm'], /below the minimum/],
  [['--size=lots', 'b', 'm'], /--size: invalid size/],
  [['--size=1m', 'b'], /missing argument/],
  [['--size=1m', 'b', 'm', 'extra'], /too many arguments/],
  [['--size=1m', '--bogus', 'b', 'm'], /unknown option '--bogus'/],
  [['--size=1m', '--md5CacheTime=5', 'b', 'm'], /need the guard on/],
  [['--size=1m', '--authVersion=aws2', 'b', 'm'], /only aws4/],
  [['--size=1m', '--fileMode=999', 'b', 'm'], /not an octal mode/],
  [['--size=1m', '--filename=a/b', 'b', 'm'], /not a valid file name/],
  [['--size=1m', '--filename=x', '--statsFilename=x', 'b', 'm'], /must differ/],
  [['--size=1m', '--accessType=everyone', 'b', 'm'], /--accessType/],
  [['--size=1m', '--initialRetryPause=500', '--maxRetryPause=100', 'b', 'm'], /--maxRetryPause/],
  [['--size=1m', '--timeout=soon', 'b', 'm'], /not a whole number/],
  [['--size=1m', '--baseURL=ftp://x/', 'b', 'm'], /http/],
  [['--size=1m', '--authVersion=aws2', 'b', 'm'], /aws4/],
  [['--size=1m', '-o', 'no_such_fuse_opt', 'b', 'm'], /unknown FUSE option/],
  [['--size=1m', 'Bad Bucket!', 'm'], /invalid bucket name/],
  [['--size=1m', '--accessId=AK', 'b', 'm'], /--accessId given without --accessKey/],
];

for (const [argv, pattern] of bad) {
  test(`refused: ${argv.join(' ')}`, () => {
    assert.throws(
      () => {
        const cli = parseCommandLine(argv, '0.0.0');
        const config = buildConfig(runArgs(cli), { HOME: '/nonexistent-home' });
        // Credentials are checked when the store opens; do that here too.
        require('../../dist/backend/s3/credentials.js').resolveCredentials(config);
      },
      (err) => err instanceof ConfigError && pattern.test(err.message),
    );
  });
}

test('--help lists supported flags and hides unsupported ones', () => {
  const cli = parseCommandLine(['--help'], '1.2.3');
  assert.equal(cli.kind, 'exit');
  assert.equal(cli.code, 0);
  assert.match(cli.output, /--blockSize <SIZE>/);
  assert.match(cli.output, /--listBlocks/);
  assert.match(cli.output, /--md5CacheSize/);
  const v = parseCommandLine(['--version'], '1.2.3');
  assert.equal(v.kind, 'exit');
  assert.match(v.output, /s3backer version 1\.2\.3/);
});

test("each flag's default is written once: the flag table's value is what the configuration takes", () => {
  const { FLAGS } = require('../../dist/config/flags.js');
  const withDefaults = FLAGS.filter((f) => f.default !== undefined && f.supported);
  assert.ok(withDefaults.length >= 20, `${withDefaults.length} flags with a default`);
  // Geometry flags change what else is checked; the rest must not change the configuration at all.
  const base = ['--size=1m', '--blockSize=4k', 'bucket', 'mnt'];
  // Flags that only count beside another one get it.
  const along = {
    md5CacheTime: ['--md5CacheSize=10'],
    minWriteDelay: ['--md5CacheSize=10'],
    statsFileMirrorInterval: ['--statsFileMirror=/tmp/m'],
    metricsAddress: ['--metricsPort=9100'],
  };
  const plain = configOf(...base);
  for (const f of withDefaults.filter((f) => f.name !== 'blockSize')) {
    const extra = along[f.name] ?? [];
    // Upstream's rule: giving --region at all implies virtual-host URLs.
    const given = { ...configOf(`--${f.name}=${f.default}`, ...extra, ...base), ...(f.name === 'region' ? { vhost: false } : {}) };
    assert.deepEqual(given, configOf(...extra, ...base), `--${f.name}=${f.default} is the default`);
  }
  // A flag whose default differed from the table's would change something: the check can fail.
  assert.notDeepEqual(configOf('--blockCacheSize=999', ...base), plain);
  assert.equal(configOf('--size=1m', 'bucket', 'mnt').blockSize, undefined, 'given or detected at mount, else the default');
  const { DEFAULT_BLOCK_SIZE } = require('../../dist/config/config.js');
  assert.equal(DEFAULT_BLOCK_SIZE, 4096);
});
