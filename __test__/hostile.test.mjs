// Malformed and hostile S3 answers, injected by the recording proxy in front of s3rver (its
// 'answer' fault: the proxy answers by itself, with lying lengths, wrong bodies, unknown
// encodings, zip bombs, bad status lines, or bytes that are not HTTP at all). Whatever comes
// back, the read of that block fails with EIO (never a crash, never garbage or zeros as data,
// never a blown-up process), other blocks go on being served, and once the answers are honest
// again the same block reads back exactly: a failed read leaves nothing behind in the block cache
// or the zero cache. PUT answers: a 200 is success whatever its body; a refused upload keeps its
// data dirty until the store takes it. A --listBlocks listing answered with something that is not
// a listing fails with a one-line warning and teaches nothing: the mount goes on serving the data.
import test from 'node:test';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createDeflate, deflateSync } from 'node:zlib';
import { join } from 'node:path';
import { startS3Server, getObject } from './helpers/s3server.mjs';
import { useRecordedS3 } from './helpers/recordingProxy.mjs';
import * as io from './helpers/blockIO.mjs';
import { startMount, runCli, workdir, run, s3Flags, isMounted, parseStatsFile, unstamped } from './helpers/ours.mjs';
import { waitForListing } from './helpers/listing.mjs';

const env = useRecordedS3('hostile', { before, after, workdir, startS3Server });
const keys = ['--accessId=S3RVER', '--accessKey=S3RVER'];
const via = (p) => [`--baseURL=${p.endpoint}/`, ...keys];
const BS = 65536;
const NBLOCKS = 4;
// Short retries: a fault that persists ends in EIO after 4 attempts (pauses 20 + 40 + 80 ms).
const common = ['--blockSize=64k', `--size=${(NBLOCKS * BS) / 1024}k`, '--initialRetryPause=20', '--maxRetryPause=200', '--timeout=2'];
const sha = (b) => createHash('sha256').update(b).digest('hex');
const blockPath = (prefix, n) => `/disk/${prefix}${n.toString(16).padStart(8, '0')}`;
const getOf = (prefix, n) => new RegExp(`^GET ${blockPath(prefix, n)}$`);
const writeAt = (file, offset, data) => io.writeAt(env.w.root, file, offset, data);
const readAt = (file, offset, length) => io.readAt(env.w.root, file, offset, length);
/** What S3 holds, read through a fresh mount straight against s3rver (no proxy, no faults). */
const contentInS3 = (prefix, length) => io.contentInS3(env.server, env.w, prefix, length, common);

/**
 * Numeric stats of a mount ("0.2500" and "1.2 sec" read as numbers). An open of the stats file
 * reads the snapshot its last getattr rendered, and the kernel keeps attributes for a second:
 * stat --cached=never (statx AT_STATX_FORCE_SYNC) makes it ask now.
 */
async function stats(mnt) {
  await run('stat', ['--cached=never', '--format=%s', join(mnt, 'stats')]);
  const all = parseStatsFile(await readFile(join(mnt, 'stats'), 'utf8'));
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Number.parseFloat(v)]));
}
const delta = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]));

/** Whether the child process has exited (without waiting for it to). */
const hasExited = (m) => Promise.race([m.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))]);

/** Peak resident memory of a process since the last resetPeak, in bytes. */
async function peakRss(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)[1]) * 1024;
}
const resetPeak = (pid) => writeFile(`/proc/${pid}/clear_refs`, '5');

/** Data written through a mount straight against s3rver (fsync'd), then unmounted: only S3 has it. */
async function seed(prefix) {
  const data = randomBytes(NBLOCKS * BS);
  const m = await startMount([...s3Flags(env.server), `--prefix=${prefix}`, ...common, 'disk', env.w.mnt], env.w.mnt);
  try {
    await writeAt(join(env.w.mnt, 'file'), 0, data);
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  return data;
}

/** A zlib stream of `bytes` zeros, made without holding them: a small body that inflates huge. */
async function zipBomb(bytes) {
  const z = createDeflate({ level: 9 });
  const parts = [];
  z.on('data', (d) => parts.push(d));
  const done = new Promise((resolve, reject) => z.on('end', resolve).on('error', reject));
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < bytes / zeros.length; i++) if (!z.write(zeros)) await new Promise((r) => z.once('drain', r));
  z.end();
  await done;
  return Buffer.concat(parts);
}

const xml = (code, message) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>`;
// Deflate squeezes zeros about 1000:1: 48 MiB makes a body smaller than a block (so it gets as far
// as the codec) that would inflate to 768 blocks.
const BOMB_BYTES = 48 << 20;
let bomb;
let big;
before(async () => {
  bomb = await zipBomb(BOMB_BYTES);
  assert.ok(bomb.length < BS, `the bomb is ${bomb.length} bytes`);
});

// Each row: the answer every GET of the target block gets (`count` times; default: until
// cleared), and what follows. `fails`: the read gives EIO (else it returns the exact data);
// `retried`: the answer counts as no answer (or a retryable one) and is tried again, each attempt
// counted under `counter`; otherwise one attempt, counted under `counter` when given.
const rows = [
  { name: '200 with a body shorter than the block (honest Content-Length)', answer: () => ({ body: randomBytes(1000) }), fails: true },
  {
    name: '200 with a body longer than the block (honest Content-Length)',
    answer: ({ data }) => ({ body: Buffer.concat([data, randomBytes(100)]) }),
    fails: true,
  },
  {
    name: '200 whose Content-Length promises the block, then the connection ends (persisting)',
    answer: ({ data }) => ({ body: data.subarray(0, 1000), contentLength: BS }),
    fails: true,
    retried: true,
    counter: 'curl_other_error',
  },
  {
    name: '200 whose Content-Length promises the block, then the connection ends (once)',
    answer: ({ data }) => ({ body: data.subarray(0, 1000), contentLength: BS }),
    count: 1,
    fails: false,
    retried: true,
    counter: 'curl_other_error',
  },
  {
    name: '200 with Content-Length 300 MiB and a short body',
    answer: () => ({ body: randomBytes(4096), contentLength: 300 << 20 }),
    fails: true,
    retried: true,
    counter: 'curl_other_error',
    memory: true,
  },
  {
    // Within what the connection layer would ever take (256 MiB), but no block's object is this big.
    name: '200 with a 96 MiB body (honest Content-Length)',
    answer: () => ({ body: (big ??= Buffer.alloc(96 << 20, 0x5a)) }),
    fails: true,
    retried: true,
    counter: 'curl_other_error',
    memory: true,
  },
  {
    name: '200 whose Content-Length is shorter than the body that follows',
    answer: ({ data }) => ({ body: Buffer.concat([data, data]), contentLength: 1000 }),
    fails: true,
  },
  {
    name: '200 with Content-Encoding: x-unknown',
    answer: ({ data }) => ({ body: data, headers: { 'content-encoding': 'x-unknown' } }),
    fails: true,
    counter: 'http_mismatch',
  },
  {
    name: '200 with Content-Encoding: deflate and a body that is not deflate data',
    answer: ({ data }) => ({ body: data, headers: { 'content-encoding': 'deflate' } }),
    fails: true,
    counter: 'http_mismatch',
  },
  {
    name: '200 with Content-Encoding: deflate inflating to 48 MiB (a zip bomb)',
    answer: () => ({ body: bomb, headers: { 'content-encoding': 'deflate' } }),
    fails: true,
    counter: 'http_mismatch',
    memory: true,
  },
  {
    name: '200 with Content-Encoding: deflate and the right block deflated (the codec rows are not vacuous)',
    answer: ({ data }) => ({ body: deflateSync(data), headers: { 'content-encoding': 'deflate' } }),
    fails: false,
  },
  {
    name: '200 with no ETag and the right block',
    answer: ({ data }) => ({ body: data, headers: { 'content-type': 'application/x-s3backer-block' } }),
    fails: false,
  },
  {
    name: '404 NoSuchBucket',
    answer: () => ({
      status: 404,
      body: xml('NoSuchBucket', 'The specified bucket does not exist'),
      headers: { 'content-type': 'application/xml' },
    }),
    fails: true,
    counter: 'http_4xx_error',
  },
  { name: '304 to a GET without If-None-Match', answer: () => ({ status: 304 }), fails: true, retried: true, counter: 'http_3xx_error' },
  {
    name: '200 whose body is an XML error document',
    answer: () => ({
      body: xml('InternalError', 'We encountered an internal error. Please try again.'),
      headers: { 'content-type': 'application/xml' },
    }),
    fails: true,
  },
  {
    name: '200 whose body is an HTML page',
    answer: () => ({
      body: '<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>',
      headers: { 'content-type': 'text/html' },
    }),
    fails: true,
  },
  {
    name: 'a garbage status line',
    answer: () => ({ raw: 'HTTP/1.1 2OO OK\r\nContent-Length: 5\r\n\r\nhello' }),
    fails: true,
    retried: true,
    counter: 'curl_other_error',
  },
  {
    name: 'not HTTP at all',
    answer: () => ({ raw: 'SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\n' }),
    fails: true,
    retried: true,
    counter: 'curl_other_error',
  },
  { name: 'binary garbage', answer: () => ({ raw: randomBytes(3000) }), fails: true, retried: true, counter: 'curl_other_error' },
];

test(
  'hostile GET answers for one block: EIO (or the exact data), other blocks served, nothing poisoned once answers are honest again',
  { timeout: 600000 },
  async (t) => {
    const p = env.proxy;
    for (const [i, row] of rows.entries()) {
      await t.test(row.name, async () => {
        const prefix = `h${i}/`;
        const data = await seed(prefix);
        const block = (n) => data.subarray(n * BS, (n + 1) * BS);
        const TARGET = 2;
        const OTHER = 1;
        // A fresh mount: the block cache is empty, read-ahead off so only the reads below fetch.
        const m = await startMount(
          [...via(p), `--prefix=${prefix}`, ...common, '--blockCacheSize=8', '--readAhead=0', 'disk', env.w.mnt],
          env.w.mnt,
        );
        const file = join(env.w.mnt, 'file');
        try {
          // One good read first: the mount works, and block 0 is in the cache.
          assert.equal(sha(await readAt(file, 0, BS)), sha(block(0)));
          const only = getOf(prefix, TARGET);
          p.inject('answer', { ...row.answer({ data: block(TARGET) }), only, count: row.count ?? 1000 });
          const recorded = p.requests.length;
          const s0 = await stats(env.w.mnt);
          let rssBefore = 0;
          if (row.memory) {
            await resetPeak(m.child.pid);
            rssBefore = await peakRss(m.child.pid);
          }

          if (row.fails) await assert.rejects(readAt(file, TARGET * BS, BS), /Input\/output error/);
          else assert.equal(sha(await readAt(file, TARGET * BS, BS)), sha(block(TARGET)), 'the exact block');
          const s1 = await stats(env.w.mnt);
          const d = delta(s0, s1);
          const faulted = p.requests.slice(recorded).filter((r) => r.fault === 'answer').length;

          assert.equal(await hasExited(m), false, `s3backer is still running: ${m.stderr()}`);
          if (row.memory) {
            const peak = await peakRss(m.child.pid);
            t.diagnostic(`${row.name}: peak RSS grew by ${((peak - rssBefore) / 1048576).toFixed(1)} MiB`);
            assert.ok(peak - rssBefore < 32 * 1024 * 1024, `peak RSS grew by ${peak - rssBefore} bytes`);
          }
          // What the stats say about that read.
          assert.equal(d.http_gets, 1, 'one block read went to S3');
          assert.equal(d.block_cache_read_misses, 1);
          assert.equal(d.http_zero_blocks_read, 0, 'never zeros');
          assert.equal(d.http_normal_blocks_read, row.fails ? 0 : 1);
          assert.equal(d.block_cache_current_size, row.fails ? 0 : 1, 'a failed read leaves no cache entry');
          assert.equal(d.zero_block_cache_size, 0);
          if (row.retried) {
            assert.ok(faulted >= (row.fails ? 2 : 1), `${faulted} attempts met the fault`);
            assert.equal(d.http_num_retries, row.fails ? faulted - 1 : faulted, 'a retry per failed attempt but the last');
            assert.equal(d[row.counter], faulted, `${row.counter} counts each failed attempt`);
          } else {
            assert.equal(faulted, 1, 'one attempt');
            assert.equal(d.http_num_retries, 0, 'not retried: another attempt would get the same');
            if (row.counter) assert.equal(d[row.counter], 1, row.counter);
          }

          // Another block right after: served, exactly.
          assert.equal(sha(await readAt(file, OTHER * BS, BS)), sha(block(OTHER)), 'another block reads fine');

          // Honest answers again: the same block reads back exactly, from S3 if the read failed.
          p.clearFaults();
          const before = p.requests.length;
          assert.equal(sha(await readAt(file, TARGET * BS, BS)), sha(block(TARGET)), 'the block, once answers are honest');
          const gets = p.requests.slice(before).filter((r) => `${r.method} ${r.url}` === `GET ${blockPath(prefix, TARGET)}`);
          assert.equal(gets.length, row.fails ? 1 : 0, row.fails ? 'fetched again from S3' : 'from the cache');
          assert.ok(gets.every((r) => r.fault === undefined && r.status === 200));
          // And now it is cached.
          const s2 = await stats(env.w.mnt);
          assert.equal(sha(await readAt(file, TARGET * BS, BS)), sha(block(TARGET)));
          assert.equal(delta(s2, await stats(env.w.mnt)).http_gets, 0);
        } finally {
          p.clearFaults();
          assert.deepEqual(await m.stop(), { code: 0, signal: null });
        }
      });
    }
  },
);

test(
  'PUT answers: 200 with a garbage body and no ETag is stored; 400 BadDigest keeps the data dirty until the store takes it',
  { timeout: 180000 },
  async () => {
    const p = env.proxy;
    const prefix = 'pw/';
    const m = await startMount([...via(p), `--prefix=${prefix}`, ...common, '--blockCacheSize=8', 'disk', env.w.mnt], env.w.mnt);
    const file = join(env.w.mnt, 'file');
    const first = randomBytes(BS);
    const second = randomBytes(BS);
    try {
      // Stored by s3rver, but the answer is 200 with garbage XML and no ETag.
      p.inject('answer', {
        only: new RegExp(`^PUT ${blockPath(prefix, 1)}$`),
        forward: true,
        body: '<?xml version="1.0"?><Garbage><<<',
        headers: { 'content-type': 'application/xml' },
      });
      const s0 = await stats(env.w.mnt);
      await writeAt(file, BS, first);
      const d = delta(s0, await stats(env.w.mnt));
      assert.equal(p.pendingFaults(), 0, 'the PUT met the fault');
      assert.equal(d.http_puts, 1);
      assert.equal(d.http_num_retries, 0, 'a 200 is success: not sent again');
      assert.equal(d.http_normal_blocks_written, 1);

      // 400 BadDigest every time: fsync fails, the data stays dirty and readable.
      p.inject('answer', {
        only: new RegExp(`^PUT ${blockPath(prefix, 2)}$`),
        count: 100000,
        status: 400,
        body: xml('BadDigest', 'The Content-MD5 you specified did not match what we received.'),
        headers: { 'content-type': 'application/xml' },
      });
      await assert.rejects(writeAt(file, 2 * BS, second), /Input\/output error/);
      const s1 = await stats(env.w.mnt);
      assert.ok(s1.block_cache_dirty_ratio > 0, 'still dirty');
      assert.ok(s1.block_cache_upload_errors >= 1);
      assert.ok(s1.http_4xx_error >= 1);
      assert.equal(await hasExited(m), false);
      assert.equal(sha(await readAt(file, 2 * BS, BS)), sha(second), 'the unsaved data reads back');
      assert.equal(await getObject(env.server, 'disk', `${prefix}00000002`), null, 'not in S3');

      p.clearFaults();
      await run('sync', ['-d', file]);
      assert.equal((await stats(env.w.mnt)).block_cache_dirty_ratio, 0, 'uploaded');
    } finally {
      p.clearFaults();
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    const stored = await contentInS3(prefix, 3 * BS);
    assert.equal(sha(stored.subarray(BS, 2 * BS)), sha(first), 'the PUT answered with garbage was stored');
    assert.equal(sha(stored.subarray(2 * BS, 3 * BS)), sha(second), 'the refused PUT was stored once the fault cleared');
  },
);

test(
  '--listBlocks with a listing that is not one: one warning line, nothing learned, the data still served',
  { timeout: 300000 },
  async (t) => {
    const p = env.proxy;
    const prefix = 'l/';
    const data = await seed(prefix);
    const listing = /^GET \/disk\/?\?(.*&)?list-type=2/;
    const flagKey = `${prefix}s3backer-mounted`;
    const head =
      '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>disk</Name><Prefix>l/</Prefix>';
    const cases = [
      { name: 'not XML', answer: { body: 'this is not a listing at all', headers: { 'content-type': 'text/plain' } } },
      {
        name: 'truncated XML',
        answer: {
          body: `${head}<KeyCount>4</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>l/0000`,
          headers: { 'content-type': 'application/xml' },
        },
      },
      {
        name: 'an HTML page',
        answer: {
          body: '<html><head><title>Hello</title></head><body><p>Welcome to our captive portal</p></body></html>',
          headers: { 'content-type': 'text/html' },
        },
      },
      {
        name: 'an XML document that is not a listing',
        answer: { body: '<?xml version="1.0"?><Something><Else>1</Else></Something>', headers: { 'content-type': 'application/xml' } },
      },
      {
        name: 'a truncated listing without a continuation token',
        answer: {
          body: `${head}<KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated></ListBucketResult>`,
          headers: { 'content-type': 'application/xml' },
        },
      },
      {
        name: 'a body cut short of its Content-Length',
        answer: { body: `${head}<KeyCount>4`, contentLength: 5000, headers: { 'content-type': 'application/xml' } },
      },
    ];
    for (const c of cases) {
      await t.test(c.name, async () => {
        p.inject('answer', { ...c.answer, only: listing, count: 1000 });
        const recorded = p.requests.length;
        const m = await startMount([...via(p), `--prefix=${prefix}`, ...common, '--listBlocks', 'disk', env.w.mnt], env.w.mnt);
        try {
          const failed = await waitForListing(env.w.mnt, 'failed');
          p.clearFaults();
          const listed = p.requests.slice(recorded).filter((q) => q.fault === 'answer').length;
          assert.ok(listed >= 1, 'the listing met the fault');
          assert.equal(failed.zero_block_cache_size, '0 blocks', 'nothing learned from it');
          assert.equal(sha(await readAt(join(env.w.mnt, 'file'), 0, data.length)), sha(data), 'the data, never zeros');
        } finally {
          p.clearFaults();
          assert.deepEqual(await m.stop(), { code: 0, signal: null });
        }
        const lines = m.stderr().trim().split('\n').map(unstamped);
        const warned = lines.filter((l) => /LIST/.test(l));
        t.diagnostic(`${c.name}: ${warned[0]}`);
        assert.ok(!lines.some((l) => l.startsWith('    at ')), `no stack trace: ${m.stderr()}`);
        assert.deepEqual(
          lines.filter((l) => !l.startsWith('s3backer: ')),
          [],
          `one line each: ${m.stderr()}`,
        );
        assert.equal(warned.length, 1, m.stderr());
        assert.match(
          warned[0],
          /^s3backer: warn: listing the blocks failed after \d+\.\d s \(LIST l\/( after l\/[0-9a-f]{8})? failed after \d+ attempts?: \S.*\); blocks it did not cover are read from the store$/,
        );
        assert.equal(await getObject(env.server, 'disk', flagKey), null, 'the mounted flag cleared at the unmount');
      });
    }
    // Honest answers again: a mount without --force lists and serves the data.
    const m = await startMount([...via(p), `--prefix=${prefix}`, ...common, '--listBlocks', 'disk', env.w.mnt], env.w.mnt);
    try {
      assert.equal(sha(await readAt(join(env.w.mnt, 'file'), 0, data.length)), sha(data));
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
  },
);
