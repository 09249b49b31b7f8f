// Upstream's flag rules beyond the core: URL style, TLS, storage options, credentials, modes,
// and config files.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { NEWEST_UPSTREAM_BIN, NEWEST_UPSTREAM_SKIP } from '../helpers/upstream.mjs';

import { parseCommandLine } from '../../dist/cli/parseArgs.js';
import { buildConfig } from '../../dist/config/config.js';
import { ConfigError } from '../../dist/errors.js';
import { expandConfigFiles } from '../../dist/cli/configFile.js';
import { FLAG_BY_NAME } from '../../dist/config/flags.js';

/**
 * The parsed arguments of a command line that runs (a test of one that exits fails here).
 * @param {import('../../dist/cli/parseArgs.js').CliResult} cli
 */
function runArgs(cli) {
  if (cli.kind !== 'run') throw new Error(`the command line exits (code ${cli.code}): ${cli.output}`);
  return cli.args;
}

/**
 * What a command line that exits prints (--help, --version).
 * @param {import('../../dist/cli/parseArgs.js').CliResult} cli
 */
function exitOutput(cli) {
  if (cli.kind !== 'exit') throw new Error('the command line runs instead of exiting');
  return cli.output;
}

/**
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} [env]
 */
const configOf = (argv, env = { HOME: '/nonexistent-home' }) => buildConfig(runArgs(parseCommandLine(argv, '0')), env);
/**
 * @param {string[]} argv
 * @param {RegExp} pattern
 * @param {NodeJS.ProcessEnv} [env]
 */
const refused = (argv, pattern, env) =>
  assert.throws(
    () => configOf(argv, env),
    (err) => err instanceof ConfigError && pattern.test(err.message),
    argv.join(' '),
  );

test('--region picks the regional endpoint and virtual-host style, --no-vhost keeps path style', () => {
  const plain = configOf(['--size=1m', 'b', 'm']);
  assert.equal(plain.baseURL, 'https://s3.amazonaws.com/');
  assert.equal(plain.vhost, false);
  const eu = configOf(['--size=1m', '--region=eu-west-1', 'b', 'm']);
  assert.equal(eu.baseURL, 'https://s3.eu-west-1.amazonaws.com/');
  assert.equal(eu.vhost, true);
  assert.equal(eu.region, 'eu-west-1');
  assert.equal(configOf(['--size=1m', '--region=eu-west-1', '--no-vhost', 'b', 'm']).vhost, false);
  assert.equal(configOf(['--size=1m', '--region=us-east-1', 'b', 'm']).baseURL, 'https://s3.amazonaws.com/');
  assert.equal(configOf(['--size=1m', '--vhost', 'b', 'm']).vhost, true);
  refused(['--size=1m', '--baseURL=http://x:9000', 'b', 'm'], /must end with a "\/"/);
  refused(['--size=1m', '--ssl', '--baseURL=http://x:9000/', 'b', 'm'], /--ssl conflicts/);
  assert.equal(configOf(['--size=1m', '--ssl', '--baseURL=https://x:9000/', 'b', 'm']).baseURL, 'https://x:9000/');
});

test('storage class, SSE, TLS and speed flags', () => {
  const c = configOf([
    '--size=1m',
    '--storageClass=STANDARD_IA',
    '--sse=aws:kms',
    '--sse-key-id=k1',
    '--insecure',
    '--maxUploadSpeed=8m',
    'b',
    'm',
  ]);
  assert.equal(c.storageClass, 'STANDARD_IA');
  assert.equal(c.sse, 'aws:kms');
  assert.equal(c.sseKeyId, 'k1');
  assert.equal(c.insecure, true);
  assert.equal(c.maxUploadSpeed, 8 * 2 ** 20);
  assert.equal(configOf(['--size=1m', '--rrs', 'b', 'm']).storageClass, 'REDUCED_REDUNDANCY');
  refused(['--size=1m', '--storageClass=CHEAP', 'b', 'm'], /--storageClass: "CHEAP"/);
  refused(['--size=1m', '--rrs', '--storageClass=STANDARD', 'b', 'm'], /--rrs and --storageClass/);
  refused(['--size=1m', '--sse=DES', 'b', 'm'], /--sse: "DES"/);
  refused(['--size=1m', '--sse=aws:kms', 'b', 'm'], /needs --sse-key-id/);
  refused(['--size=1m', '--sse-key-id=k', 'b', 'm'], /goes with --sse=aws:kms/);
  refused(['--size=1m', '--cacert=/nonexistent/ca.pem', 'b', 'm'], /--cacert: cannot read/);
  refused(['--size=1m', '--maxDownloadSpeed=0', 'b', 'm'], /must be positive/);
});

test('credential flags', () => {
  const env = { HOME: '/nonexistent-home', MY_KEY: 'from-env' };
  const c = configOf(['--size=1m', '--accessId=AK', '--accessKeyEnv=MY_KEY', 'b', 'm'], env);
  assert.equal(c.accessKey, 'from-env');
  refused(['--size=1m', '--accessId=AK', '--accessKeyEnv=NOPE', 'b', 'm'], /NOPE is not set/, env);
  refused(['--size=1m', '--accessId=AK', '--accessKey=x', '--accessKeyEnv=MY_KEY', 'b', 'm'], /cannot be combined/, env);
  refused(['--size=1m', '--accessKey=x', 'b', 'm'], /no --accessId/);
  const iam = configOf(['--size=1m', '--accessEC2IAM=web', 'b', 'm']);
  assert.deepEqual(iam.ec2Iam, { role: 'web', imdsV2: false });
  assert.deepEqual(configOf(['--size=1m', '--accessEC2IAM', '--accessEC2IAM-IMDSv2', 'b', 'm']).ec2Iam, { role: undefined, imdsV2: true });
  refused(['--size=1m', '--accessEC2IAM', '--accessId=AK', '--accessKey=x', 'b', 'm'], /do not give --accessId/);
});

test('modes: --erase and --reset-mounted-flag take a bucket only; --noAutoDetect', () => {
  assert.equal(configOf(['--erase', 'b']).mode, 'erase');
  assert.equal(configOf(['--reset-mounted-flag', 'b']).mode, 'resetMountedFlag');
  refused(['--erase', 'b', 'm'], /no mountpoint goes with --erase/);
  refused(['--erase', '--reset-mounted-flag', 'b'], /cannot be combined/);
  assert.equal(configOf(['--noAutoDetect', '--size=1m', 'b', 'm']).noAutoDetect, true);
});

test('config files: one argument per line, comments, nesting, -F and -o configFile=', () => {
  const dir = mkdtempSync(join(tmpdir(), 's3b-cfg-'));
  try {
    const inner = join(dir, 'inner.conf');
    const outer = join(dir, 'outer.conf');
    writeFileSync(inner, '# geometry\n--blockSize=64k\n\n  --size=1g  \n');
    writeFileSync(outer, `--prefix=disk/\n--configFile=${inner}\nbkt\n`);
    assert.deepEqual(expandConfigFiles(['-F', outer, 'mnt']), ['--prefix=disk/', '--blockSize=64k', '--size=1g', 'bkt', 'mnt']);
    const c = configOf(['-o', `ro,configFile=${outer}`, 'mnt', '-f']);
    assert.equal(c.bucket, 'bkt');
    assert.equal(c.prefix, 'disk/');
    assert.equal(c.blockSize, 65536);
    assert.equal(c.size, 2 ** 30);
    assert.deepEqual(c.fuseOptions, ['ro']);
    assert.equal(configOf([`--configFile=${outer}`, 'mnt']).size, 2 ** 30);
    const loop = join(dir, 'loop.conf');
    writeFileSync(loop, `--configFile=${loop}\n`);
    refused([`--configFile=${loop}`, 'mnt'], /too many levels of --configFile nesting/);
    refused([`--configFile=${join(dir, 'missing.conf')}`, 'mnt'], /cannot read config file .*ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('codec flags: optional values only with =, so a bare flag never swallows the bucket', () => {
  const c = configOf(['--compress', 'bkt', 'mnt']);
  assert.equal(c.bucket, 'bkt');
  assert.equal(c.codec.compression, 'deflate');
  assert.equal(configOf(['--compress=zstd', '--compress-level=9', 'b', 'm']).codec.level, 9);
  assert.equal(configOf(['--compress=3', 'b', 'm']).codec.level, 3);
  const e = configOf(['--encrypt', '--password=pw', 'b', 'm']);
  assert.deepEqual(
    [e.codec.cipher, e.codec.compression, e.codec.password, e.codec.passwordFromCommandLine],
    ['AES-128-CBC', 'deflate', 'pw', true],
  );
  assert.equal(configOf(['--encrypt=aes-256-cbc', '--password=pw', 'b', 'm']).codec.cipher, 'AES-256-CBC');
  assert.equal(configOf(['--accessEC2IAM', 'b', 'm']).bucket, 'b');
  refused(['--compress=lz4', 'b', 'm'], /--compress: "lz4"/);
  refused(['--compress=12', 'b', 'm'], /deflate level 12 is not 1-9/);
  refused(['--encrypt=DES-CBC', '--password=x', 'b', 'm'], /cipher "DES-CBC" is not supported/);
  refused(['--password=x', 'b', 'm'], /without --encrypt/);
  refused(['--encrypt', '--password=x', '--passwordFile=/etc/hostname', 'b', 'm'], /cannot be combined/);
  refused(['--encrypt', '--passwordFile=/nonexistent/pw', 'b', 'm'], /cannot read --passwordFile/);
  refused(['--keyLength=32', 'b', 'm'], /--keyLength needs --encrypt/);
});

test('--help shows the implemented upstream flags', () => {
  const help = exitOutput(parseCommandLine(['--help'], '0'));
  for (const flag of ['--erase', '--configFile', '--vhost', '--no-vhost', '--accessEC2IAM', '--sse-key-id', '--debug-http', '-F <file>']) {
    assert.ok(help.includes(flag), flag);
  }
});

test('-o with a valued flag but no value is refused instead of swallowing the next argument', () => {
  refused(['-o', 'blockSize', '-f', 'b', 'm'], /-o blockSize needs a value: -o blockSize=VALUE/);
  refused(['-o', 'ro,size', 'b', 'm'], /-o size needs a value/);
  // Flags without a value, and valued ones with one, still pass.
  const c = configOf(['-o', 'readOnly,size=1m,blockSize=4k', 'b', 'm']);
  assert.equal(c.readOnly, true);
  assert.equal(c.blockSize, 4096);
});

test(
  "every flag upstream's newest --help lists is one of ours, as --flag and -o flag (NBD mode refused with its own line)",
  { skip: NEWEST_UPSTREAM_SKIP },
  () => {
    const theirs = spawnSync(NEWEST_UPSTREAM_BIN, ['--help'], { encoding: 'utf8' });
    // --help and --version are commander's here, not flags of the table; upstream's help misspells
    // --sse-key-id as --ss-key-id (its parser knows only the former, as ours does).
    const names = [...new Set([...`${theirs.stdout}${theirs.stderr}`.matchAll(/^\s+--([A-Za-z0-9-]+)/gm)].map((m) => m[1]))]
      .filter((name) => name !== 'help' && name !== 'version')
      .map((name) => (name === 'ss-key-id' ? 'sse-key-id' : name));
    assert.ok(names.length > 60, `upstream's --help listed ${names.length} flags`);
    const ourHelp = exitOutput(parseCommandLine(['--help'], '0'));
    for (const name of names) {
      const spec = FLAG_BY_NAME.get(name);
      assert.ok(spec, `--${name} is known`);
      if (spec.supported) assert.ok(ourHelp.includes(`--${name}`), `--${name} is in our --help`);
      else assert.match(spec.refusal ?? '', /NBD mode is not available/, `--${name}: only NBD mode is refused`);
      // The fstab form reaches the same flag (valued ones need a value there; -o configFile= is
      // read at once, tested above).
      if (name === 'configFile') continue;
      const form = spec.kind === 'value' ? `${name}=1` : name;
      const parsed = runArgs(parseCommandLine(['-o', form, 'bucket', '/mnt'], '0'));
      assert.ok(Object.hasOwn(parsed.flags, name), `-o ${form} is the flag, not a FUSE option`);
    }
  },
);
