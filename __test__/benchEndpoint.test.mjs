// The benchmarks' S3 stand-in (bench/endpoint/, Rust): what the tools ask of S3 answered as S3
// does, and a mount of ours on it that writes, remounts and reads back. The bench's figures are
// only as good as this endpoint's answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import { connect } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startEndpoint } from '../bench/endpoint.mjs';
import { startMount, workdir, run, sha256File } from './helpers/ours.mjs';

let endpoint;
before(async () => (endpoint = await startEndpoint(0)), { timeout: 120000 });
after(() => endpoint?.stop());

const md5 = (b, enc) => createHash('md5').update(b).digest(enc);

function request(method, path, { body, headers = {}, port = endpoint.port } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: body ? { 'content-length': body.length, ...headers } : headers },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('objects: PUT with and without Content-MD5, GET with the kept headers, HEAD, If-None-Match, DELETE', async () => {
  const body = randomBytes(300 * 1024);
  const put = await request('PUT', '/b/t1/obj', {
    body,
    headers: {
      'content-md5': md5(body, 'base64'),
      'content-type': 'application/x-test',
      'x-amz-meta-s3backer-hmac': 'abc',
      'x-other': 'dropped',
    },
  });
  assert.equal(put.status, 200);
  assert.equal(put.headers.etag, `"${md5(body, 'hex')}"`);
  const got = await request('GET', '/b/t1/obj');
  assert.equal(got.status, 200);
  assert.ok(got.body.equals(body), 'the body as sent');
  assert.equal(got.headers['content-type'], 'application/x-test');
  assert.equal(got.headers['x-amz-meta-s3backer-hmac'], 'abc');
  assert.equal(got.headers['x-other'], undefined, 'headers S3 does not store are not handed back');
  assert.equal(got.headers.etag, `"${md5(body, 'hex')}"`);
  const head = await request('HEAD', '/b/t1/obj');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(body.length));
  assert.equal(head.body.length, 0);
  assert.equal((await request('GET', '/b/t1/obj', { headers: { 'if-none-match': `"${md5(body, 'hex')}"` } })).status, 304);
  assert.equal((await request('GET', '/b/t1/obj', { headers: { 'if-none-match': '"0000"' } })).status, 200);
  // Without a Content-MD5 the endpoint hashes the body itself.
  const plain = Buffer.from('hello');
  assert.equal((await request('PUT', '/b/t1/plain', { body: plain })).headers.etag, `"${md5(plain, 'hex')}"`);
  assert.equal((await request('DELETE', '/b/t1/obj')).status, 204);
  const gone = await request('GET', '/b/t1/obj');
  assert.equal(gone.status, 404);
  assert.match(gone.body.toString(), /NoSuchKey/);
});

test('listing: v1 and v2, a prefix, pages by marker and continuation token, escaped keys; multi-object delete', async () => {
  const keys = ['a&b', 'k 1', 'k2', 'k3', 'k<4'];
  for (const k of keys) assert.equal((await request('PUT', `/b/t2/${encodeURIComponent(k)}`, { body: Buffer.from(k) })).status, 200);
  await request('PUT', '/b/t2x', { body: Buffer.from('outside the prefix') });
  const unescape = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const listed = (xml) => [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => unescape(m[1]));
  const v2 = async (token) =>
    (
      await request('GET', `/b?list-type=2&prefix=t2%2F&max-keys=2${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`)
    ).body.toString();
  let xml = await v2();
  const seen = [];
  for (;;) {
    seen.push(...listed(xml));
    const next = /<NextContinuationToken>([^<]*)</.exec(xml);
    if (!next) break;
    assert.match(xml, /<IsTruncated>true</);
    xml = await v2(unescape(next[1]));
  }
  assert.deepEqual(seen, keys.map((k) => `t2/${k}`).sort(), 'every key once, in order, none outside the prefix');
  const v1 = (await request('GET', '/b?prefix=t2%2F&marker=t2%2Fk2')).body.toString();
  assert.deepEqual(listed(v1), ['t2/k3', 't2/k<4']);
  assert.match(v1, /<Size>2<\/Size>/);
  const del = `<Delete>${keys.map((k) => `<Object><Key>t2/${k.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</Key></Object>`).join('')}</Delete>`;
  const deleted = await request('POST', '/b?delete', { body: Buffer.from(del), headers: { 'content-md5': md5(del, 'base64') } });
  assert.equal(deleted.status, 200);
  assert.equal(listed(deleted.body.toString()).length, keys.length);
  assert.deepEqual(listed((await request('GET', '/b?prefix=t2')).body.toString()), ['t2x']);
});

test('HTTP: Expect: 100-continue (libcurl before large PUTs), a chunked body, two requests on one connection', async () => {
  const sock = connect(endpoint.port, '127.0.0.1');
  await new Promise((resolve) => sock.once('connect', resolve));
  let got = '';
  sock.on('data', (d) => (got += d.toString('latin1')));
  const until = async (re) => {
    for (let i = 0; i < 200 && !re.test(got); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(got, re);
  };
  sock.write('PUT /b/t3/cont HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  await until(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  sock.write('hello');
  await until(/HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n$/);
  got = '';
  sock.write('PUT /b/t3/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n');
  await until(/HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n$/);
  sock.destroy();
  assert.equal((await request('GET', '/b/t3/cont')).body.toString(), 'hello');
  assert.equal((await request('GET', '/b/t3/chunked')).body.toString(), 'abcdefg');
});

test('requests are counted by the first segment of their keys and their kind, for the bench', async () => {
  const counts = async () => JSON.parse((await request('GET', '/_bench/requests')).body.toString())['t5'];
  assert.equal(await counts(), undefined, 'nothing under t5/ yet');
  await request('PUT', '/b/t5/a', { body: Buffer.from('x') });
  await request('PUT', '/b/t5/b', { body: Buffer.from('y') });
  await request('GET', '/b/t5/a');
  await request('HEAD', '/b/t5/missing');
  await request('GET', '/b?list-type=2&prefix=t5%2F');
  const del = '<Delete><Object><Key>t5/a</Key></Object><Object><Key>t5/b</Key></Object></Delete>';
  await request('POST', '/b?delete', { body: Buffer.from(del) });
  await request('DELETE', '/b/t5/a');
  assert.deepEqual(await counts(), { GET: 1, PUT: 2, HEAD: 1, DELETE: 1, LIST: 1, POST: 1 });
});

test('a delay per request holds each answer back', { timeout: 120000 }, async () => {
  const slow = await startEndpoint(40, { warm: false });
  try {
    const t = performance.now();
    assert.equal((await request('HEAD', '/b/none', { port: slow.port })).status, 404);
    assert.ok(performance.now() - t >= 40, 'answered after the delay');
  } finally {
    slow.stop();
  }
});

test('--connect-delay holds a new connection, not the requests after; --idle-close closes an idle one', { timeout: 120000 }, async () => {
  const far = await startEndpoint(0, { warm: false, connectDelay: 150, idleCloseMs: 400 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  const timed = async () => {
    const t = performance.now();
    const res = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: far.port, method: 'HEAD', path: '/b/none', agent }, resolve);
      req.on('socket', (s) => sockets.add(s));
      req.on('error', reject);
      req.end();
    });
    res.resume();
    await new Promise((r) => res.on('end', r));
    assert.equal(res.statusCode, 404);
    return performance.now() - t;
  };
  try {
    assert.ok((await timed()) >= 150, 'the first request waits for its new connection');
    assert.ok((await timed()) < 100, 'the next one, on the same connection, does not');
    assert.equal(sockets.size, 1);
    const [socket] = sockets;
    const closed = new Promise((r) => socket.once('close', r));
    const t = performance.now();
    await closed;
    const idled = performance.now() - t;
    assert.ok(idled >= 300 && idled < 2000, `closed by the endpoint after ${idled} ms idle`);
    assert.ok((await timed()) >= 150, 'a new connection again');
  } finally {
    agent.destroy();
    far.stop();
  }
});

test(
  '--tls: HTTPS on a second port with a certificate the client is given, the same objects as over HTTP',
  { timeout: 120000 },
  async () => {
    const secure = await startEndpoint(0, { warm: false, tls: true });
    try {
      assert.ok(secure.tlsPort > 0 && secure.tlsPort !== secure.port);
      const ca = await readFile(secure.caFile);
      const over = (method, path, body, headers = {}) =>
        new Promise((resolve, reject) => {
          const req = https.request(
            {
              host: '127.0.0.1',
              port: secure.tlsPort,
              method,
              path,
              ca,
              headers: body ? { 'content-length': body.length, ...headers } : headers,
            },
            (res) => {
              const chunks = [];
              res.on('data', (c) => chunks.push(c));
              res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      const body = randomBytes(300 * 1024);
      // libcurl asks before a large body (Expect: 100-continue); the answer must go out over TLS at once.
      assert.equal((await over('PUT', '/b/tls/obj', body, { 'content-md5': md5(body, 'base64'), expect: '100-continue' })).status, 200);
      const got = await over('GET', '/b/tls/obj');
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(body), 'the same bytes back over HTTPS');
      assert.ok((await request('GET', '/b/tls/obj', { port: secure.port })).body.equals(body), 'and over plain HTTP');
      // Not trusted without the certificate.
      await assert.rejects(
        new Promise((resolve, reject) =>
          https.get({ host: '127.0.0.1', port: secure.tlsPort, path: '/b/tls/obj' }, resolve).on('error', reject),
        ),
        /self[- ]signed|unable to verify/i,
      );
    } finally {
      secure.stop();
    }
  },
);

test('a mount of ours on it: written, remounted, read back byte for byte', { timeout: 120000 }, async () => {
  const w = await workdir('bench-endpoint');
  try {
    const flags = [
      `--baseURL=http://127.0.0.1:${endpoint.port}/`,
      '--accessId=x',
      '--accessKey=x',
      '--prefix=t4/',
      '--blockSize=64k',
      '--size=8m',
      'b',
      w.mnt,
    ];
    const src = join(w.root, 'src');
    await writeFile(src, randomBytes(3 * 1024 * 1024 + 4096));
    let m = await startMount(flags, w.mnt);
    await run('dd', [
      `if=${src}`,
      `of=${join(w.mnt, 'file')}`,
      'bs=64k',
      'seek=3',
      'oflag=seek_bytes',
      'conv=notrunc,fsync',
      'status=none',
    ]);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    m = await startMount(
      flags.filter((f) => !f.startsWith('--size') && !f.startsWith('--blockSize')),
      w.mnt,
    );
    const back = join(w.root, 'back');
    await run('dd', [
      `if=${join(w.mnt, 'file')}`,
      `of=${back}`,
      'bs=4k',
      'skip=3',
      'iflag=skip_bytes',
      `count=${3 * 256 + 1}`,
      'status=none',
    ]);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.equal(await sha256File(back), await sha256File(src));
  } finally {
    await w.cleanup();
  }
});
