// Tests of the test helpers themselves: the s3rver child process and Debian's s3backer 1.5.4.
//   node --test __test__/helpers.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdtemp, open, rmdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

import { startS3Server, listKeys, getObject, headObject, putObject } from './helpers/s3server.mjs';
import { startUpstream, stopUpstream, isFuseMounted, UPSTREAM_BIN } from './helpers/upstream.mjs';

const require = createRequire(import.meta.url);
const { ListObjectsV2Command } = require('@aws-sdk/client-s3');

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

test('s3rver child process: put/get/head and a paginated listing of 1200 keys', { timeout: 120_000 }, async () => {
  const server = await startS3Server({ buckets: ['test', 'other'] });
  const { dir, child } = server;
  try {
    assert.match(server.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.endpoint, `http://127.0.0.1:${server.port}`);
    assert.ok(child.pid > 0 && child.pid !== process.pid, 'server runs in a child process');

    const keys = Array.from({ length: 1200 }, (_, i) => `k/${i.toString(16).padStart(8, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => putObject(server, 'test', k, Buffer.from(k))));
    }
    await putObject(server, 'test', 'meta', Buffer.from('hello'), {
      contentType: 'application/x-s3backer-block',
      contentEncoding: 'deflate, encrypt-AES-128-CBC',
      metadata: { 's3backer-hmac': '"00ff"', 's3backer-blocksize': '4096' },
    });

    // The first raw page must be truncated: that is the path that needs --openssl-legacy-provider.
    const page = await server.client().send(new ListObjectsV2Command({ Bucket: 'test', Prefix: 'k/' }));
    assert.equal(page.IsTruncated, true);
    assert.equal(page.Contents.length, 1000);
    assert.ok(page.NextContinuationToken);

    const listed = await listKeys(server, 'test', 'k/');
    assert.equal(listed.length, 1200);
    assert.deepEqual(listed, [...keys].sort());
    assert.deepEqual(await listKeys(server, 'test'), [...keys, 'meta'].sort());
    assert.deepEqual(await listKeys(server, 'other'), []);

    const o = await getObject(server, 'test', keys[1199]);
    assert.ok(Buffer.isBuffer(o.body));
    assert.equal(o.body.toString(), keys[1199]);

    // Stored as sent: s3rver keeps and returns Content-Encoding and x-amz-meta-*; the SDK must
    // not decode the body.
    const m = await getObject(server, 'test', 'meta');
    assert.equal(m.body.toString(), 'hello');
    assert.equal(m.contentEncoding, 'deflate, encrypt-AES-128-CBC');
    assert.equal(m.headers['content-encoding'], 'deflate, encrypt-AES-128-CBC');
    assert.equal(m.contentType, 'application/x-s3backer-block');
    assert.equal(m.metadata['s3backer-hmac'], '"00ff"');
    assert.equal(m.headers['x-amz-meta-s3backer-blocksize'], '4096');
    const h = await headObject(server, 'test', 'meta');
    assert.equal(h.contentLength, 5);
    assert.equal(h.metadata['s3backer-blocksize'], '4096');

    assert.equal(await getObject(server, 'test', 'missing'), null);
    assert.equal(await headObject(server, 'test', 'missing'), null);
  } finally {
    await server.stop();
  }
  assert.ok(child.exitCode !== null || child.signalCode !== null, 'child exited');
  await assert.rejects(access(dir), 'store directory removed');
});

const haveUpstream = existsSync(UPSTREAM_BIN) && existsSync('/dev/fuse');

test(
  "Debian's s3backer 1.5.4 against s3rver: write 1 MiB, unmount, remount, read back",
  { timeout: 120_000, skip: haveUpstream ? false : `${UPSTREAM_BIN} or /dev/fuse missing` },
  async () => {
    const server = await startS3Server({ buckets: ['test'] });
    const mnt = await mkdtemp(join(tmpdir(), 's3b-mnt-'));
    const geometry = ['--size=16M', '--blockSize=64K'];
    let up;
    try {
      const data = randomBytes(1024 * 1024);

      up = startUpstream(server, 'test', mnt, geometry);
      await up.ready;
      assert.equal(await isFuseMounted(mnt), true);

      // While mounted, 1.5.4 keeps a mount token in <prefix>s3backer-mounted.
      const flag = await getObject(server, 'test', 's3backer-mounted');
      assert.ok(flag, 'mounted flag present while mounted');
      assert.match(flag.metadata['s3backer-mount-token'], /^[0-9a-f]+$/);
      assert.match(flag.body.toString(), /^[^\n]*\n\d{8}T\d{6}Z\n$/);

      // Async I/O from this process is safe: the FUSE server is another process.
      let fh = await open(join(mnt, 'file'), 'r+');
      try {
        const { bytesWritten } = await fh.write(data, 0, data.length, 0);
        assert.equal(bytesWritten, data.length);
        await fh.sync();
      } finally {
        await fh.close();
      }

      const exit = await stopUpstream(up);
      assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, up.output());
      assert.equal(await isFuseMounted(mnt), false);

      // Blocks are %08x keys, the mounted flag is gone, block 0 carries the geometry.
      const keys = await listKeys(server, 'test');
      const expected = Array.from({ length: 16 }, (_, i) => i.toString(16).padStart(8, '0'));
      assert.deepEqual(keys, expected);
      const b0 = await headObject(server, 'test', '00000000');
      assert.equal(b0.metadata['s3backer-blocksize'], '65536');
      assert.equal(b0.metadata['s3backer-filesize'], String(16 * 1024 * 1024));
      assert.equal(b0.contentType, 'application/x-s3backer-block');
      assert.equal(b0.contentEncoding, undefined);
      const b1 = await getObject(server, 'test', '00000001');
      assert.equal(b1.metadata['s3backer-blocksize'], undefined);
      assert.ok(b1.body.equals(data.subarray(65536, 131072)), 'block 1 stored raw');

      // Remount without geometry flags: 1.5.4 auto-detects it from block 0.
      up = startUpstream(server, 'test', mnt, []);
      await up.ready;
      const back = Buffer.alloc(data.length);
      fh = await open(join(mnt, 'file'), 'r');
      try {
        const { bytesRead } = await fh.read(back, 0, back.length, 0);
        assert.equal(bytesRead, back.length);
        const tail = Buffer.alloc(65536);
        await fh.read(tail, 0, tail.length, data.length); // beyond the data: zeros
        assert.ok(tail.equals(Buffer.alloc(65536)));
      } finally {
        await fh.close();
      }
      assert.equal(sha256(back), sha256(data));
      const exit2 = await stopUpstream(up);
      assert.equal(exit2.code, 0, up.output());
      assert.match(up.output(), /auto-detected block size=64k and total size=16m/);
      up = undefined;
    } finally {
      if (up) await stopUpstream(up).catch(() => {});
      // rmdir, never a recursive rm: a mount left behind must not be emptied through FUSE.
      await rmdir(mnt).catch(() => {});
      await server.stop();
    }
  },
);
