// Each S3 option's effect, observed at a recording endpoint: headers sent, URL style, retries,
// speed limits, --debug-http, and where credentials come from.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server, putObject } from './helpers/s3server.mjs';
import { startRecordingProxy, useRecordedS3 } from './helpers/recordingProxy.mjs';
import { startFakeImds } from './helpers/fakeImds.mjs';
import { runCli, startMount, workdir, run, REPO } from './helpers/ours.mjs';

const env = useRecordedS3('s3opts', { before, after, workdir, startS3Server });

const keys = ['--accessId=S3RVER', '--accessKey=S3RVER'];
const via = (p) => [`--baseURL=${p.endpoint}/`, ...keys];
const puts = (key) => env.proxy.requests.filter((r) => r.method === 'PUT' && r.key === key);

async function writeBlock(file, blockSize, blockNum, data) {
  const src = join(env.w.root, 'block.bin');
  await writeFile(src, data);
  await run('dd', [`if=${src}`, `of=${file}`, `bs=${blockSize}`, `seek=${blockNum}`, 'count=1', 'conv=notrunc,fsync', 'status=none']);
}

test('PUT headers: ACL, storage class, SSE, Content-MD5, content type, block 0 geometry', { timeout: 120000 }, async () => {
  env.proxy.clear();
  const m = await startMount(
    [
      ...via(env.proxy),
      '--prefix=h/',
      '--size=1m',
      '--accessType=public-read',
      '--storageClass=STANDARD_IA',
      '--sse=AES256',
      'disk',
      env.w.mnt,
    ],
    env.w.mnt,
  );
  const data = randomBytes(4096);
  await writeBlock(join(env.w.mnt, 'file'), 4096, 0, data);
  await writeBlock(join(env.w.mnt, 'file'), 4096, 3, data);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  const [put0] = puts('h/00000000');
  const [put3] = puts('h/00000003');
  for (const put of [put0, put3]) {
    assert.equal(put.headers['x-amz-acl'], 'public-read');
    assert.equal(put.headers['x-amz-storage-class'], 'STANDARD_IA');
    assert.equal(put.headers['x-amz-server-side-encryption'], 'AES256');
    assert.equal(put.headers['content-type'], 'application/x-s3backer-block');
    assert.equal(put.headers['content-md5'], createHash('md5').update(data).digest('base64'));
    assert.equal(put.headers['content-encoding'], undefined);
    assert.equal(put.bodyLength, 4096);
  }
  assert.equal(put0.headers['x-amz-meta-s3backer-blocksize'], '4096');
  assert.equal(put0.headers['x-amz-meta-s3backer-filesize'], String(1 << 20));
  assert.equal(put3.headers['x-amz-meta-s3backer-blocksize'], undefined);
  const flag = puts('h/s3backer-mounted')[0];
  assert.equal(flag.headers['content-type'], 'text/plain');
  assert.match(flag.headers['x-amz-meta-s3backer-mount-token'], /^[0-9a-f]{8}$/);
  assert.ok(
    env.proxy.requests.some((r) => r.method === 'DELETE' && r.key === 'h/s3backer-mounted'),
    'flag cleared',
  );
});

test('--sse=aws:kms sends the key id; --rrs the reduced redundancy class', { timeout: 120000 }, async () => {
  for (const [extra, check] of [
    [
      ['--sse=aws:kms', '--sse-key-id=my-key'],
      (h) => h['x-amz-server-side-encryption'] === 'aws:kms' && h['x-amz-server-side-encryption-aws-kms-key-id'] === 'my-key',
    ],
    [['--rrs'], (h) => h['x-amz-storage-class'] === 'REDUCED_REDUNDANCY'],
  ]) {
    env.proxy.clear();
    // --reset-mounted-flag is not enough here: only block writes carry these headers.
    const m = await startMount([...via(env.proxy), '--prefix=k/', '--size=1m', ...extra, 'disk', env.w.mnt], env.w.mnt);
    await writeBlock(join(env.w.mnt, 'file'), 4096, 1, randomBytes(4096));
    await m.stop();
    const put = puts('k/00000001')[0];
    assert.ok(put && check(put.headers), `${extra.join(' ')}: ${JSON.stringify(put?.headers)}`);
  }
});

test('URL style: path by default, virtual-host with --region or --vhost, path again with --no-vhost', { timeout: 120000 }, async () => {
  const childEnv = { ...process.env, NODE_OPTIONS: `--require ${join(REPO, '__test__/helpers/resolve-localhost.cjs')}` };
  const base = [`--baseURL=${env.proxy.localhostEndpoint}/`, ...keys, '--reset-mounted-flag', 'disk'];
  for (const [extra, vhost] of [
    [[], false],
    [['--region=us-east-1'], true],
    [['--vhost'], true],
    [['--region=eu-west-1', '--no-vhost'], false],
  ]) {
    env.proxy.clear();
    const res = await runCli([...extra, ...base], { env: childEnv });
    assert.equal(res.code, 0, res.stderr);
    assert.ok(env.proxy.requests.length >= 2);
    for (const r of env.proxy.requests) {
      assert.equal(r.vhost, vhost, `${extra.join(' ')}: ${r.host} ${r.url}`);
      assert.equal(r.bucket, 'disk');
    }
  }
});

test('failed requests are retried with pauses and counted', { timeout: 120000 }, async () => {
  env.proxy.clear();
  // The bucket check, so the three failures hit one request and its pauses double.
  env.proxy.failNext([503, 500, 503], /^HEAD \/disk\/?$/);
  const m = await startMount([...via(env.proxy), '--prefix=r/', '--size=1m', '--initialRetryPause=20', 'disk', env.w.mnt], env.w.mnt);
  const stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
  assert.match(stats, /^http_num_retries\s+3$/m);
  assert.match(stats, /^http_5xx_error\s+3$/m);
  assert.match(stats, /^http_total_retry_delay\s+0\.140 sec$/m, '20 + 40 + 80 ms');
  // And the pauses really happened between the attempts, as the endpoint saw them.
  const heads = env.proxy.requests.filter((r) => r.method === 'HEAD' && r.key === '' && r.bucket === 'disk').map((r) => r.at);
  const gaps = heads.slice(1, 4).map((at, i) => at - heads[i]);
  for (const [i, pause] of [20, 40, 80].entries()) {
    assert.ok(
      gaps[i] >= pause - 2 && gaps[i] < pause + 1000,
      `attempt ${i + 2} came ${gaps[i]} ms after the one before, pause ${pause} ms`,
    );
  }
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
});

test('--maxUploadSpeed and --maxDownloadSpeed pace each transfer', { timeout: 120000 }, async () => {
  // 64 KiB at 1 Mibit/s takes at least half a second each way (no block cache: every read fetches).
  const m = await startMount(
    [
      ...via(env.proxy),
      '--prefix=s/',
      '--blockSize=64k',
      '--size=1m',
      '--blockCacheSize=0',
      '--maxUploadSpeed=1m',
      '--maxDownloadSpeed=1m',
      'disk',
      env.w.mnt,
    ],
    env.w.mnt,
  );
  try {
    let started = Date.now();
    await writeBlock(join(env.w.mnt, 'file'), 65536, 2, randomBytes(65536));
    assert.ok(Date.now() - started >= 480, `upload took ${Date.now() - started} ms`);
    started = Date.now();
    await run('dd', [`if=${join(env.w.mnt, 'file')}`, 'of=/dev/null', 'bs=65536', 'skip=2', 'count=1', 'iflag=direct', 'status=none']);
    assert.ok(Date.now() - started >= 480, `download took ${Date.now() - started} ms`);
  } finally {
    await m.stop();
  }
});

test('EC2 role credentials are fetched again before they expire', { timeout: 60000 }, async () => {
  // The SDK renews credentials that expire within minutes: with a 1-minute expiry every request renews.
  const imds = await startFakeImds({ role: 'short', expiresInMs: 60000 });
  try {
    const res = await runCli(
      [
        `--baseURL=${env.proxy.endpoint}/`,
        '--accessEC2IAM=short',
        '--initialRetryPause=50',
        '--maxRetryPause=100',
        '--reset-mounted-flag',
        'disk',
      ],
      {
        env: { PATH: process.env.PATH, HOME: env.w.root, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint },
      },
    );
    assert.equal(res.code, 1, 's3rver rejects the role key, which is fine here');
    const fetches = imds.requests.filter((r) => r.url.endsWith('/security-credentials/short')).length;
    assert.ok(fetches >= 2, `credentials fetched ${fetches} times`);
  } finally {
    await imds.stop();
  }
});

test('--debug-http logs request lines and statuses, never credentials', { timeout: 60000 }, async () => {
  const res = await runCli([...via(env.proxy), '--debug-http', '--reset-mounted-flag', 'disk']);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, new RegExp(`http: HEAD http://127\\.0\\.0\\.1:${env.proxy.port}/disk/? -> 200 \\(\\d+ ms\\)`));
  assert.match(res.stderr, /http: GET http:\/\/127\.0\.0\.1:\d+\/disk\/s3backer-mounted -> 404/);
  assert.doesNotMatch(res.stderr, /S3RVER|Credential=|Signature/);
});

test('--defaultContentEncoding applies to blocks stored without one', { timeout: 60000 }, async () => {
  await putObject(env.server, 'disk', 'e/00000000', Buffer.alloc(4096, 1), {
    metadata: { 's3backer-blocksize': '4096', 's3backer-filesize': '65536' },
  });
  const m = await startMount(
    [...via(env.proxy), '--prefix=e/', '--defaultContentEncoding=deflate', '--readOnly', 'disk', env.w.mnt],
    env.w.mnt,
  );
  const dd = await run('dd', [`if=${join(env.w.mnt, 'file')}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct']).catch((e) => e);
  assert.match(dd.stderr, /Input\/output error/);
  assert.match(m.stderr(), /block 0: corrupt compressed data/);
  await m.stop();
});

test(
  'credentials: access file, --accessKeyEnv, environment, profile, EC2 role (IMDSv1 and v2), anonymous',
  { timeout: 120000 },
  async () => {
    const answering = await startRecordingProxy();
    const imds = await startFakeImds({ role: 'disk-role' });
    const imds2 = await startFakeImds({ role: 'v2-role', accessKeyId: 'AKIAIMDSV2', requireV2: true });
    const home = join(env.w.root, 'home');
    await mkdir(join(home, '.aws'), { recursive: true });
    await writeFile(join(home, 'passwd'), 'FILEKEY:file-secret\n');
    await writeFile(join(home, '.aws', 'credentials'), '[work]\naws_access_key_id = PROFILEKEY\naws_secret_access_key = profile-secret\n');
    const clean = { PATH: process.env.PATH, HOME: home };
    const credentialOf = async (args, env) => {
      answering.clear();
      const res = await runCli([`--baseURL=${answering.endpoint}/`, '--reset-mounted-flag', ...args, 'disk'], {
        env: { ...clean, ...env },
      });
      assert.equal(res.code, 0, res.stderr);
      const auth = answering.requests[0].headers.authorization;
      return {
        id: auth === undefined ? undefined : /Credential=([^/]+)\//.exec(auth)?.[1],
        token: answering.requests[0].headers['x-amz-security-token'],
      };
    };
    try {
      assert.equal((await credentialOf([`--accessFile=${join(home, 'passwd')}`])).id, 'FILEKEY');
      assert.equal((await credentialOf(['--accessId=NAMED', '--accessKeyEnv=MY_SECRET'], { MY_SECRET: 's' })).id, 'NAMED');
      assert.equal((await credentialOf([], { AWS_ACCESS_KEY_ID: 'ENVKEY', AWS_SECRET_ACCESS_KEY: 'env-secret' })).id, 'ENVKEY');
      assert.equal((await credentialOf([], { AWS_PROFILE: 'work' })).id, 'PROFILEKEY');
      const v1 = await credentialOf(['--accessEC2IAM=disk-role'], { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint });
      assert.deepEqual(v1, { id: 'AKIAIMDS', token: 'imds-session-token' });
      assert.ok(imds.requests.some((r) => r.url === '/latest/meta-data/iam/security-credentials/disk-role'));
      const v2 = await credentialOf(['--accessEC2IAM', '--accessEC2IAM-IMDSv2'], { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds2.endpoint });
      assert.equal(v2.id, 'AKIAIMDSV2');
      assert.ok(
        imds2.requests.some((r) => r.method === 'PUT' && r.url === '/latest/api/token'),
        'IMDSv2 session token fetched',
      );
      assert.equal((await credentialOf(['--accessId='])).id, undefined, 'unsigned');
      const none = await runCli(
        [`--baseURL=${answering.endpoint}/`, '--reset-mounted-flag', '--initialRetryPause=50', '--maxRetryPause=100', 'disk'],
        {
          env: { ...clean, AWS_EC2_METADATA_DISABLED: 'true' },
        },
      );
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no usable S3 credentials/);
    } finally {
      await answering.stop();
      await imds.stop();
      await imds2.stop();
    }
  },
);
