// S3 answers the SDK used to handle for us: a clock too far from S3's is corrected from the
// answer's Date and the request sent again at once; a bucket in another region is named, with the
// flag to pass, instead of being retried for half a minute.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, startMount, workdir, run, isMounted, unstamped, REPO } from './helpers/ours.mjs';
import { startS3Server, getObject } from './helpers/s3server.mjs';
import { useRecordedS3 } from './helpers/recordingProxy.mjs';

const env = useRecordedS3('s3-answers', { before, after, workdir, startS3Server });
const flags = (prefix, ...extra) => [
  `--baseURL=${env.proxy.endpoint}/`,
  '--accessId=S3RVER',
  '--accessKey=S3RVER',
  `--prefix=${prefix}`,
  ...extra,
];
const sha = (b) => createHash('sha256').update(b).digest('hex');
const parseAmzDate = (t) =>
  Date.UTC(+t.slice(0, 4), +t.slice(4, 6) - 1, +t.slice(6, 8), +t.slice(9, 11), +t.slice(11, 13), +t.slice(13, 15));

test(
  "a clock an hour behind S3's: corrected from the first answer, the request sent again at once, the data stored",
  { timeout: 120000 },
  async () => {
    const { proxy, w } = env;
    proxy.clear();
    const data = randomBytes(256 * 1024);
    const src = join(w.root, 'skew-data');
    await writeFile(src, data);
    // s3rver refuses requests signed 15 minutes or more from its own time, as S3 does.
    const behind = { ...process.env, NODE_OPTIONS: `--require=${join(REPO, '__test__', 'helpers', 'clockBehind.cjs')}` };
    const m = await startMount(flags('skew/', '--blockSize=64k', '--size=8m', 'disk', w.mnt), w.mnt, { env: behind });
    await run('dd', [`if=${src}`, `of=${join(w.mnt, 'file')}`, 'bs=64k', 'conv=notrunc,fsync', 'status=none']);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    const refused = proxy.requests.filter((r) => r.status === 403);
    assert.ok(refused.length >= 1 && refused.length <= 3, `the first requests (sent together at the start) are refused: ${refused.length}`);
    for (const r of refused) {
      const again = proxy.requests.find((q) => q !== r && q.at >= r.at && q.method === r.method && q.url === r.url);
      assert.ok(again && again.status !== 403, `${r.method} ${r.url} went again and passed`);
    }
    const later = proxy.requests.filter((r) => r.at > Math.max(...refused.map((q) => q.doneAt ?? q.at)));
    assert.ok(later.length > 4 && later.every((r) => r.status !== 403), 'nothing refused once corrected');
    for (const r of later) {
      const skew = Math.abs(parseAmzDate(r.headers['x-amz-date']) - r.at);
      assert.ok(skew < 60 * 1000, `${r.method} ${r.url} signed ${skew} ms from S3's clock`);
    }
    const warnings = m
      .stderr()
      .trim()
      .split('\n')
      .filter((l) => /clock/.test(l));
    assert.ok(warnings.length >= 1 && warnings.length <= refused.length, m.stderr());
    assert.match(
      unstamped(warnings[0]),
      /^s3backer: warn: S3 says this machine's clock is 3[56]\d\d s behind its own: requests are signed with S3's time from now on/,
    );
    const block1 = await getObject(env.server, 'disk', 'skew/00000001');
    assert.equal(sha(block1.body), sha(data.subarray(65536, 131072)), 'the data is in the store');
  },
);

test(
  'a bucket in another region: one request, then a line naming the region and the flag; nothing mounted',
  { timeout: 60000 },
  async () => {
    const { proxy, w } = env;
    const permanentRedirect =
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>disk.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>disk</Bucket></Error>';
    const malformed =
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region \'us-east-1\' is wrong; expecting \'eu-west-1\'</Message><Region>eu-west-1</Region></Error>';
    const answers = [
      // S3's answer to a request at the wrong regional endpoint: the region in a header (a HEAD has no body).
      { status: 301, headers: { 'x-amz-bucket-region': 'eu-west-1', 'content-type': 'application/xml' }, body: permanentRedirect },
      // Signed for the wrong region: it is in the body (and in the header S3 puts on HEAD bucket's answers).
      { status: 400, headers: { 'content-type': 'application/xml' }, body: malformed, headOnlyHeader: true },
    ];
    try {
      for (const { headOnlyHeader, ...answer } of answers) {
        proxy.clear();
        proxy.clearFaults();
        if (headOnlyHeader)
          proxy.inject('answer', {
            count: 10,
            only: /^HEAD \/disk\/$/,
            ...answer,
            headers: { ...answer.headers, 'x-amz-bucket-region': 'eu-west-1' },
          });
        proxy.inject('answer', { count: 100, ...answer });
        for (const mode of [['-f'], []]) {
          proxy.clear();
          const r = await runCli([...mode, ...flags('region/', '--region=us-east-1', '--blockSize=64k', '--size=8m', 'disk', w.mnt)]);
          assert.equal(r.code, 1, r.stderr);
          const sent = proxy.requests.map((q) => `${q.method} ${q.url}`);
          assert.deepEqual([...new Set(sent)], sent, 'no request sent twice: no retries');
          const lines = r.stderr.trim().split('\n');
          assert.equal(lines.length, 1, r.stderr);
          assert.match(
            lines[0],
            new RegExp(
              `^s3backer: cannot reach bucket disk at ${env.proxy.endpoint}/: .*HTTP ${answer.status}( \\w+: .*)?: the bucket is in region eu-west-1, not us-east-1: mount with --region=eu-west-1$`,
            ),
          );
          assert.equal(await isMounted(w.mnt), false);
        }
      }
    } finally {
      proxy.clearFaults();
    }
    assert.equal(await getObject(env.server, 'disk', 'region/s3backer-mounted'), null, 'no mounted flag');
  },
);

test('the base URL of another AWS region is named too', async () => {
  // Nothing reaches AWS: the recording endpoint is the HTTP proxy, and answers as S3 does there.
  const { proxy, w } = env;
  proxy.clear();
  proxy.inject('answer', { count: 10, status: 301, headers: { 'x-amz-bucket-region': 'eu-west-1' } });
  let r;
  try {
    const args = [
      '-f',
      '--baseURL=http://s3.us-west-2.amazonaws.com/',
      '--accessId=S3RVER',
      '--accessKey=S3RVER',
      '--region=us-west-2',
      '--blockSize=64k',
      '--size=8m',
      'disk',
      w.mnt,
    ];
    r = await runCli(args, { env: { ...process.env, http_proxy: proxy.endpoint, no_proxy: '' } });
  } finally {
    proxy.clearFaults();
  }
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /the bucket is in region eu-west-1, not us-west-2: mount with --region=eu-west-1 and --baseURL=https:\/\/s3\.eu-west-1\.amazonaws\.com\/\n$/,
  );
  const sent = proxy.requests.map((q) => `${q.method} ${q.url}`);
  assert.deepEqual([...new Set(sent)], sent, 'no request sent twice');
  assert.equal(await isMounted(w.mnt), false);
});
