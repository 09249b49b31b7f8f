// Bad input: one clear line on stderr, a non-zero exit, nothing mounted, no mounted flag.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server, headObject, putObject, listKeys } from './helpers/s3server.mjs';
import { runCli, workdir, isMounted, s3Flags, startMount } from './helpers/ours.mjs';

const env = useS3Server('errors', { before, after, workdir });

async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

async function refused(args, pattern) {
  const res = await runCli(['-f', ...args]);
  assert.equal(res.code, 1, `exit code; stderr: ${res.stderr}`);
  assert.match(res.stderr, pattern);
  assert.match(res.stderr, /^s3backer: /);
  assert.ok(!res.stderr.includes('    at '), 'no stack trace');
  assert.equal(await isMounted(env.w.mnt), false, 'nothing mounted');
  assert.equal(await headObject(env.server, 'disk', 's3backer-mounted'), null, 'no mounted flag');
  return res;
}

test('bad flags and sizes', async () => {
  const base = [...s3Flags(env.server)];
  await refused([...base, '--size=1m', '--blockSize=3k', 'disk', env.w.mnt], /block size 3072 is not a power of two/);
  await refused([...base, '--size=10000', 'disk', env.w.mnt], /not a multiple of the block size/);
  await refused([...base, '--blockSize=512', '--size=4t', 'disk', env.w.mnt], /more than 2\^32/);
  // A malformed command line points at --help; a value that cannot work names the fix instead.
  const unknown = await refused([...base, '--size=1m', '--frobnicate', 'disk', env.w.mnt], /unknown option/);
  assert.match(unknown.stderr, /Try "s3backer --help" for more information/);
  const missing = await refused([...base, '--size=1m', 'disk'], /missing argument: expected bucket and mountpoint/);
  assert.match(missing.stderr, /Try "s3backer --help"/);
  const wrongSize = await refused([...base, '--size=10000', 'disk', env.w.mnt], /not a multiple of the block size/);
  assert.doesNotMatch(wrongSize.stderr, /--help/);
  await refused([...base, '--size=1m', '-o', 'bogus_option', 'disk', env.w.mnt], /unknown FUSE option/);
  await refused([...base, '--size=1m', '--authVersion=aws2', 'disk', env.w.mnt], /only aws4 signing/);
  await refused([...base, 'disk', env.w.mnt], /--size is required/);
  await refused([...base, '--size=1m', 'disk', `${env.w.root}/no-such-dir`], /does not exist/);
});

test('missing bucket, rejected credentials, unreachable endpoint', { timeout: 60000 }, async () => {
  const quick = ['--initialRetryPause=50', '--maxRetryPause=200', '--timeout=2'];
  await refused([...s3Flags(env.server), ...quick, '--size=1m', 'nosuchbucket', env.w.mnt], /bucket nosuchbucket .* does not exist/);
  // s3rver checks the access key ID (not V4 signatures): an unknown ID is its rejected credential.
  const badId = s3Flags(env.server).map((f) => (f.startsWith('--accessId=') ? '--accessId=NOBODY' : f));
  await refused([...badId, ...quick, '--size=1m', 'disk', env.w.mnt], /denied \(HTTP 403\): check the credentials/);
  const port = await freePort();
  const started = Date.now();
  const res = await refused(
    [`--baseURL=http://127.0.0.1:${port}/`, '--accessId=a', '--accessKey=b', ...quick, '--size=1m', 'disk', env.w.mnt],
    /cannot reach bucket disk .*ECONNREFUSED/,
  );
  assert.ok(Date.now() - started < 20000, `gave up within the retry budget: ${res.stderr}`);
  // A name that does not resolve (.invalid never does).
  await refused(
    ['--baseURL=http://no-such-host.invalid/', '--accessId=a', '--accessKey=b', ...quick, '--size=1m', 'disk', env.w.mnt],
    /cannot reach bucket disk .*ENOTFOUND/,
  );
});

test('a set mounted flag refuses the mount until --force or --reset-mounted-flag', { timeout: 120000 }, async () => {
  await putObject(env.server, 'disk', 's3backer-mounted', 'otherhost\n20260101T000000Z\n', {
    metadata: { 's3backer-mount-token': '12345678' },
  });
  const res = await runCli(['-f', ...s3Flags(env.server), '--size=1m', 'disk', env.w.mnt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /appears to be mounted already/);
  assert.equal(await isMounted(env.w.mnt), false);

  const reset = await runCli([...s3Flags(env.server), '--reset-mounted-flag', 'disk']);
  assert.equal(reset.code, 0, reset.stderr);
  assert.equal(await headObject(env.server, 'disk', 's3backer-mounted'), null);

  await putObject(env.server, 'disk', 's3backer-mounted', 'otherhost\n', { metadata: { 's3backer-mount-token': '1' } });
  const m = await startMount([...s3Flags(env.server), '--force', '--size=1m', 'disk', env.w.mnt], env.w.mnt);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  assert.equal(await headObject(env.server, 'disk', 's3backer-mounted'), null);
  assert.deepEqual(await listKeys(env.server, 'disk'), [], 'nothing written, nothing stored');
});

test('--help and --version', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: s3backer \[options\] bucket mountpoint/);
  assert.match(help.stdout, /--listBlocks/);
  const version = await runCli(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^s3backer version \d+\.\d+\.\d+/);
});

test(
  'a table of bad values and malformed config files: each a one-line reason and exit 1, nothing mounted',
  { timeout: 120000 },
  async () => {
    const base = [...s3Flags(env.server), '--size=1m'];
    const cfg = async (name, text) => {
      const file = join(env.w.root, name);
      await writeFile(file, text);
      return file;
    };
    const loop = join(env.w.root, 'loop.conf');
    await writeFile(loop, `--configFile=${loop}\n`);
    const table = [
      [['--blockSize=0'], /block size/i],
      [['--blockSize=-4k'], /size/i],
      [['--blockSize=4x'], /size/i],
      [['--size=1q'], /size/i],
      [['--size='], /size/i],
      [['--blockCacheSize=-1'], /blockCacheSize/],
      [['--blockCacheSize=many'], /blockCacheSize/],
      [['--blockCacheThreads=0'], /blockCacheThreads/],
      [['--blockCacheMaxDirty=5000'], /cannot exceed --blockCacheSize/],
      [['--timeout=0'], /timeout/],
      [['--initialRetryPause=500', '--maxRetryPause=100'], /--maxRetryPause must be at least --initialRetryPause/],
      [['--readAheadTrigger=0'], /readAheadTrigger/],
      [['--fileMode=999'], /fileMode/],
      [['--fileMode=rw'], /fileMode/],
      [['--compress=lzma'], /compress/i],
      [['--encrypt=DES'], /cipher "DES" is not supported/],
      [['--password=x'], /without --encrypt/],
      [['--encrypt', '--password=x', `--passwordFile=${join(env.w.root, 'missing')}`], /cannot be combined/],
      [['--encrypt', `--passwordFile=${join(env.w.root, 'missing')}`], /cannot read --passwordFile/],
      [['--md5CacheTime=5'], /need the guard on/],
      [['--baseURL=ftp://x/'], /baseURL/i],
      [['--baseURL=not a url'], /baseURL/i],
      [['--storageClass=CHEAP'], /storage ?class/i],
      [['--accessFile=/nonexistent/passwd'], /cannot read --accessFile/],
      [['-o', 'max_read=1,2'], /FUSE option/],
      [['-o', 'fsname=a b'], /FUSE option|cannot be passed on/],
      [[`--configFile=${join(env.w.root, 'nope.conf')}`], /configFile|nope\.conf/],
      [[`--configFile=${loop}`], /too many levels of --configFile nesting/],
      [['-F', await cfg('unknown.conf', '# comment\n--frobnicate\n')], /unknown option/],
      [['-F', await cfg('badvalue.conf', '--blockSize=3k\n')], /not a power of two/],
    ];
    for (const [args, pattern] of table) {
      // The table's own value of a flag replaces the base's; an access file replaces the keys.
      const replaced = (a) =>
        args.some((x) => x.split('=')[0] === a.split('=')[0] || (x.startsWith('--accessFile=') && /^--access(Id|Key)=/.test(a)));
      const res = await runCli(['-f', ...base.filter((a) => !replaced(a)), ...args, 'disk', env.w.mnt]);
      assert.equal(res.code, 1, `${args.join(' ')}: exit code; stderr: ${res.stderr}`);
      assert.match(res.stderr, pattern, args.join(' '));
      assert.match(res.stderr, /^s3backer: /, args.join(' '));
      assert.ok(!res.stderr.includes('    at '), `${args.join(' ')}: no stack trace`);
    }
    assert.equal(await isMounted(env.w.mnt), false, 'nothing mounted');
    assert.equal(await headObject(env.server, 'disk', 's3backer-mounted'), null, 'no mounted flag');
  },
);
