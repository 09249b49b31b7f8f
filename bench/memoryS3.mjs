#!/usr/bin/env node
// An in-memory S3 endpoint for benchmarks: path-style GET, PUT, HEAD, DELETE, multi-object delete
// (POST ?delete: mkfs's and ext4's zeroing of ranges come as trims), ListObjects v1/v2,
// keep-alive, an optional delay per request (S3's first-byte latency). Correctness tests use
// s3rver; it is too slow to measure a fast client against. Prints "listening PORT" when ready.
//   node bench/memoryS3.mjs [--port N] [--delay MS]
import * as http from 'node:http';
import { createHash } from 'node:crypto';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const delayMs = arg('delay', 0);
const objects = new Map(); // "bucket/key" -> { body, headers }
const xmlEscape = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const KEPT = /^(content-type|content-encoding|x-amz-meta-.*)$/;

function list(bucket, q) {
  const prefix = q.get('prefix') ?? '';
  const max = Number(q.get('max-keys') ?? 1000);
  const after = q.get('continuation-token') ?? q.get('marker') ?? q.get('start-after') ?? '';
  const keys = [...objects.keys()]
    .filter((k) => k.startsWith(`${bucket}/`))
    .map((k) => k.slice(bucket.length + 1))
    .filter((k) => k.startsWith(prefix) && k > after)
    .sort();
  const page = keys.slice(0, max);
  const truncated = keys.length > max;
  const last = page[page.length - 1] ?? '';
  const contents = page
    .map((k) => `<Contents><Key>${xmlEscape(k)}</Key><Size>${objects.get(`${bucket}/${k}`).body.length}</Size><ETag>"${objects.get(`${bucket}/${k}`).etag}"</ETag></Contents>`)
    .join('');
  const v2 = q.get('list-type') === '2';
  const next = truncated ? (v2 ? `<NextContinuationToken>${xmlEscape(last)}</NextContinuationToken>` : `<NextMarker>${xmlEscape(last)}</NextMarker>`) : '';
  return `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${bucket}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${next}${contents}</ListBucketResult>`;
}

/** Deletes each <Key> of a multi-object delete's body; every one is answered as <Deleted>. */
function deleteMany(bucket, xml) {
  const unescape = (k) => k.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  const keys = [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => unescape(m[1]));
  for (const k of keys) objects.delete(`${bucket}/${k}`);
  return `<?xml version="1.0" encoding="UTF-8"?><DeleteResult>${keys.map((k) => `<Deleted><Key>${xmlEscape(k)}</Key></Deleted>`).join('')}</DeleteResult>`;
}

const server = http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const url = new URL(req.url, 'http://x');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const id = `${bucket}/${key}`;
    const send = (status, body = '', headers = {}) =>
      setTimeout(() => {
        res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
        res.end(req.method === 'HEAD' ? undefined : body);
      }, delayMs);
    if (key === '') {
      if (req.method === 'POST' && url.searchParams.has('delete')) return send(200, deleteMany(bucket, Buffer.concat(chunks).toString()), { 'content-type': 'application/xml' });
      if (req.method === 'GET') return send(200, list(bucket, url.searchParams), { 'content-type': 'application/xml' });
      return send(200);
    }
    if (req.method === 'PUT') {
      const body = Buffer.concat(chunks);
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([h]) => KEPT.test(h)));
      // S3 checks a Content-MD5 against the body on its own machines; this stand-in shares the
      // client's two cores, so it takes the one sent (each tool sends it) and hashes only without.
      const sent = req.headers['content-md5'];
      const etag = sent ? Buffer.from(sent, 'base64').toString('hex') : createHash('md5').update(body).digest('hex');
      objects.set(id, { body, headers, etag });
      return send(200, '', { etag: `"${etag}"` });
    }
    if (req.method === 'DELETE') {
      objects.delete(id);
      return send(204);
    }
    const obj = objects.get(id);
    if (!obj) return send(404, '<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>', { 'content-type': 'application/xml' });
    const inm = req.headers['if-none-match'];
    if (inm && inm.replace(/"/g, '') === obj.etag) return send(304);
    return send(200, obj.body, { ...obj.headers, etag: `"${obj.etag}"`, 'last-modified': new Date(0).toUTCString() });
  });
});
server.listen(arg('port', 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
// Exit with the parent.
process.on('disconnect', () => process.exit(0));
setInterval(() => {
  try {
    process.kill(process.ppid, 0);
  } catch {
    process.exit(0);
  }
}, 1000).unref();
