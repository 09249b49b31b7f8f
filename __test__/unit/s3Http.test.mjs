// The signed S3 request path (src/backend/s3/s3Http.ts, s3ObjectStore.ts) against a scripted HTTP
// peer: signatures recomputed independently from what arrived, key encoding, virtual-host rules,
// and answers a block must never be read from (a missing bucket, oversized or short bodies).
import test from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { createHash, createHmac } from 'node:crypto';

import { S3Http, encodeKey } from '../../dist/backend/s3/s3Http.js';
import { S3ObjectStore } from '../../dist/backend/s3/s3ObjectStore.js';
import { HttpStats } from '../../dist/backend/httpStats.js';
import { silentLogger } from '../../dist/util/log.js';
import { s3StoreOptions } from '../helpers/settings.mjs';

/** A peer that records each request and answers with `answer(req, body)`. */
async function peer(answer) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      answer(req, res, body);
    });
  });
  await /** @type {Promise<void>} */ (new Promise((r) => server.listen(0, '127.0.0.1', r)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${port}/`, seen, close: () => new Promise((r) => server.close(r)) };
}

/** SigV4 from its definition, for a request as the server saw it. */
function expectedSignature(req, secret, region) {
  const auth = req.headers.authorization;
  const signed = /SignedHeaders=([^,]+)/.exec(auth)[1].split(';');
  const scope = /Credential=[^/]+\/([^,]+)/.exec(auth)[1];
  const date = req.headers['x-amz-date'];
  const canonical = [
    req.method,
    req.url,
    '',
    ...signed.map((h) => `${h}:${String(req.headers[h]).trim()}`),
    '',
    signed.join(';'),
    req.headers['x-amz-content-sha256'],
  ].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', date, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  /** @type {string | Buffer} */
  let key = `AWS4${secret}`;
  for (const part of [date.slice(0, 8), region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  return createHmac('sha256', key).update(toSign).digest('hex');
}

/**
 * @param {string} baseURL
 * @param {Partial<import('../../dist/backend/s3/s3ObjectStore.js').S3StoreOptions>} [extra]
 * @returns {import('../../dist/backend/s3/s3ObjectStore.js').S3StoreOptions}
 */
const storeOptions = (baseURL, extra = {}) =>
  s3StoreOptions(baseURL, {
    bucket: 'bkt',
    region: 'eu-west-3',
    timeoutMs: 5000,
    initialRetryPauseMs: 10,
    maxRetryPauseMs: 30,
    concurrency: 4,
    secretAccessKey: 'sekrit/key+1',
    ...extra,
  });

test('every request carries a SigV4 signature that verifies from what the server received', async () => {
  const p = await peer((req, res) => {
    if (req.method === 'GET') res.writeHead(200, { 'content-length': 3, etag: '"x"', 'x-amz-meta-s3backer-hmac': '"h"' }).end('abc');
    else res.writeHead(200, { 'content-length': 0 }).end();
  });
  const store = new S3ObjectStore(storeOptions(p.url), new HttpStats(), silentLogger);
  try {
    const key = 'pre fix/blk+01~(x)*!';
    await store.put(key, Buffer.from('data'), {
      contentType: 'application/x-s3backer-block',
      contentMD5: 'jXd/OF09/siBXSD3SWAm3A==',
      metadata: { 's3backer-blocksize': '4' },
    });
    const got = await store.get(key);
    assert.equal(got.body.toString(), 'abc');
    assert.deepEqual(got.metadata, { 's3backer-hmac': '"h"' });
    await store.delete(key);
    for (let i = 0; i < 3; i++) await store.head(key); // repeated signing (remembered HMACs) stays right
    assert.equal(p.seen.length, 6);
    for (const req of p.seen) {
      assert.equal(
        req.url,
        `/bkt/${encodeURIComponent(key)
          .replace(/%2F/g, '/')
          .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`,
      );
      assert.match(
        req.headers.authorization,
        /^AWS4-HMAC-SHA256 Credential=AKID\/\d{8}\/eu-west-3\/s3\/aws4_request, SignedHeaders=[^,]*content-md5|^AWS4-HMAC-SHA256 /,
      );
      assert.equal(
        /Signature=([0-9a-f]{64})/.exec(req.headers.authorization)[1],
        expectedSignature(req, 'sekrit/key+1', 'eu-west-3'),
        `${req.method} signature`,
      );
    }
    const put = p.seen[0];
    assert.equal(put.headers['content-md5'], 'jXd/OF09/siBXSD3SWAm3A==');
    assert.match(put.headers.authorization, /SignedHeaders=[^,]*content-md5/, 'Content-MD5 is signed: it covers the unsigned payload');
    assert.equal(put.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
    assert.equal(put.headers['x-amz-meta-s3backer-blocksize'], '4');
    assert.equal(put.headers['x-amz-acl'], 'private');
    assert.equal(put.body.toString(), 'data');
  } finally {
    store.close();
    await p.close();
  }
});

test('keys are encoded once, as S3 expects', () => {
  assert.equal(encodeKey('a b/c+d%e'), 'a%20b/c%2Bd%25e');
  assert.equal(encodeKey("it's(1)*!~._-"), 'it%27s%281%29%2A%21~._-');
});

test('virtual-host style only where the bucket can be a host label', async () => {
  const host = (baseURL, bucket) => {
    const h = new S3Http({
      baseURL,
      bucket,
      vhost: true,
      region: 'us-east-1',
      credentials: undefined,
      timeoutMs: 1000,
      maxSockets: 1,
      maxBodyBytes: 1,
    });
    // hostname and bucketPath are private: the test reads what the constructor made of the URL.
    const inside = /** @type {any} */ (h);
    return `${inside.hostname} ${inside.bucketPath}`;
  };
  assert.equal(host('https://s3.amazonaws.com/', 'my-bucket'), 'my-bucket.s3.amazonaws.com ');
  assert.equal(host('http://127.0.0.1:9000/', 'my-bucket'), '127.0.0.1 /my-bucket', 'not on an IP address');
  assert.equal(host('https://s3.amazonaws.com/', 'dotted.name'), 's3.amazonaws.com /dotted.name', 'not dotted under TLS');
  assert.equal(host('https://s3.amazonaws.com/', 'Upper_Case'), 's3.amazonaws.com /Upper_Case');
});

test('a missing bucket, an oversized or a short body is an error, never a block of zeros or garbage', async () => {
  let mode = 'nobucket';
  const p = await peer((req, res) => {
    if (mode === 'nobucket') {
      const xml = '<?xml version="1.0"?><Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>';
      return res.writeHead(404, { 'content-type': 'application/xml', 'content-length': xml.length }).end(xml);
    }
    if (mode === 'nokey') return res.writeHead(404, { 'content-length': 0 }).end();
    if (mode === 'oversized') return res.writeHead(200, { 'content-length': 300 * 1024 * 1024 }).end();
    if (mode === 'short') {
      res.writeHead(200, { 'content-length': 1000 });
      res.write(Buffer.alloc(10));
      return res.socket.destroy();
    }
  });
  const store = new S3ObjectStore(storeOptions(p.url), new HttpStats(), silentLogger);
  try {
    await assert.rejects(store.get('k'), /NoSuchBucket/);
    mode = 'nokey';
    assert.equal(await store.get('k'), null, 'a missing key reads as absent');
    mode = 'oversized';
    await assert.rejects(store.get('k'), /larger than any block object/);
    mode = 'short';
    await assert.rejects(store.get('k'), /failed after/);
  } finally {
    store.close();
    await p.close();
  }
});

test('a listing that is not XML, and an answer without an ETag or with an unknown encoding, fail clearly', async () => {
  const p = await peer((req, res) => {
    if (req.url.includes('list-type=2'))
      return res.writeHead(200, { 'content-type': 'application/xml' }).end('<ListBucketResult><Contents><Key>unterminated');
    res.writeHead(200, { 'content-length': 4, 'content-encoding': 'x-unknown' }).end('abcd');
  });
  const store = new S3ObjectStore(storeOptions(p.url, { maxRetryPauseMs: 10 }), new HttpStats(), silentLogger);
  try {
    await assert.rejects(
      store.list('', () => {}),
      (err) => err instanceof Error && !/^\s*at /.test(err.message),
    );
    const got = await store.get('k');
    assert.equal(got.etag, undefined, 'no ETag: none is made up');
    assert.equal(got.contentEncoding, 'x-unknown', 'passed on for the codec to refuse');
  } finally {
    store.close();
    await p.close();
  }
});
