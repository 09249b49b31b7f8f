// A recording S3 endpoint on loopback: every request's method, path, Host and headers are kept
// for tests to inspect (and a POST's body). With a target (an s3rver from s3server.mjs) it forwards requests there,
// turning virtual-host requests into path style; without one it answers like an empty bucket
// (HEAD bucket 200, objects 404, PUT/DELETE 200/204), which is enough for one-shot commands.
import * as http from 'node:http';
import { createHash } from 'node:crypto';

function xmlError(code, message) {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
}

/**
 * Sends an injected answer (see inject(), kind 'answer'). With `raw`, those bytes go to the socket
 * as they are and it closes; with a `contentLength` other than the body's, the head and body are
 * written by hand (node:http would not send a lying Content-Length) and the socket closes after
 * the body; otherwise node:http answers (keep-alive), with exactly the headers given.
 */
function answer(req, res, record, fault) {
  const socket = req.socket;
  // The client may close the connection before the answer is out (it refuses a long body).
  res.on('error', () => {});
  socket.on('error', () => {});
  if (fault.raw !== undefined) {
    record.status = 'raw';
    socket.end(fault.raw);
    return;
  }
  const body = Buffer.from(fault.body ?? '');
  record.status = fault.status;
  const headers = Object.entries(fault.headers ?? {});
  if (fault.contentLength === undefined || fault.contentLength === body.length) {
    res.writeHead(fault.status, [...headers, ['content-length', String(body.length)]].flat());
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  const head = [
    `HTTP/1.1 ${fault.status} ${http.STATUS_CODES[fault.status] ?? 'Whatever'}`,
    ...headers.map(([n, v]) => `${n}: ${v}`),
    `content-length: ${fault.contentLength}`,
    'connection: close',
  ];
  socket.write(`${head.join('\r\n')}\r\n\r\n`, 'latin1');
  socket.end(body);
}

export async function startRecordingProxy({ target } = {}) {
  const requests = [];
  let failures = [];
  let failOnly = /./;
  // Scripted faults, each taken by the next request its `only` matches (see inject()).
  const faults = [];
  const injected = { status: 0, reset: 0, hang: 0, slow: 0, cut: 0 };
  const hung = new Set();
  const puts = { inFlight: 0, max: 0 };
  // For eventual-consistency tests: the last GET answer per key, and keys to answer stale.
  const lastGet = new Map();
  const stale = new Map();
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const host = req.headers.host ?? '';
    const hostname = host.replace(/:\d+$/, '');
    // Virtual-host style: the bucket is the first label of a *.localhost host name.
    const vhostBucket = hostname.endsWith('.localhost') ? hostname.slice(0, -'.localhost'.length) : undefined;
    const url = new URL(req.url, 'http://x');
    const path = vhostBucket ? `/${vhostBucket}${url.pathname === '/' ? '' : url.pathname}` : url.pathname;
    const [, bucket = '', ...keyParts] = path.split('/');
    const record = {
      method: req.method,
      url: req.url,
      host,
      vhost: vhostBucket !== undefined,
      bucket,
      key: decodeURIComponent(keyParts.join('/')),
      headers: { ...req.headers },
      bodyLength: 0,
      status: undefined,
      at: Date.now(),
    };
    requests.push(record);
    // When the answer was over (or the connection gone): with `at`, which requests overlapped.
    res.on('close', () => (record.doneAt = Date.now()));
    if (req.method === 'PUT') {
      puts.inFlight++;
      puts.max = Math.max(puts.max, puts.inFlight);
      res.on('close', () => puts.inFlight--);
    }
    const reply = (status, body = '', headers = {}) => {
      record.status = status;
      res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const fi = faults.findIndex((f) => f.only.test(`${req.method} ${req.url}`));
    const fault = fi >= 0 ? faults.splice(fi, 1)[0] : undefined;
    if (fault) {
      injected[fault.kind] = (injected[fault.kind] ?? 0) + 1;
      record.fault = fault.kind;
      if (fault.kind === 'answer' && !fault.forward) {
        req.resume();
        req.on('end', () => answer(req, res, record, fault));
        return;
      }
      if (fault.kind === 'status') {
        req.resume();
        req.on('end', () =>
          reply(
            fault.status,
            xmlError(fault.status === 503 ? 'SlowDown' : fault.status >= 500 ? 'InternalError' : 'AccessDenied', 'injected'),
            { 'content-type': 'application/xml' },
          ),
        );
        return;
      }
      if (fault.kind === 'reset') return req.socket.destroy();
      if (fault.kind === 'hang') {
        hung.add(req.socket);
        return req.resume();
      }
    }
    if (failures.length > 0 && failOnly.test(`${req.method} ${req.url}`)) {
      const status = failures.shift();
      req.resume();
      req.on('end', () =>
        reply(status, xmlError(status >= 500 ? 'ServiceUnavailable' : 'AccessDenied', 'injected'), { 'content-type': 'application/xml' }),
      );
      return;
    }
    if (!target) {
      req.on('data', (d) => (record.bodyLength += d.length));
      req.on('end', () => {
        if (record.key === '') {
          if (req.method === 'HEAD') return reply(bucket.startsWith('missing') ? 404 : 200);
          return reply(200, '<?xml version="1.0"?><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>', {
            'content-type': 'application/xml',
          });
        }
        if (req.method === 'PUT') return reply(200, '', { etag: '"0"' });
        if (req.method === 'DELETE') return reply(204);
        return reply(404, req.method === 'HEAD' ? '' : xmlError('NoSuchKey', 'no such key'), { 'content-type': 'application/xml' });
      });
      return;
    }
    const old = lastGet.get(record.key);
    if (req.method === 'GET' && old && (stale.get(record.key) ?? 0) > 0) {
      stale.set(record.key, stale.get(record.key) - 1);
      record.stale = true;
      record.status = 200;
      res.writeHead(200, old.headers);
      res.end(old.body);
      return;
    }
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: target.port,
        method: req.method,
        path: path + url.search,
        headers: { ...req.headers, host: `127.0.0.1:${target.port}` },
        agent,
      },
      async (up) => {
        if (fault?.kind === 'answer') {
          // Forwarded (so a PUT is stored), but the client gets the injected answer instead.
          up.resume();
          up.on('end', () => answer(req, res, record, fault));
          return;
        }
        record.status = up.statusCode;
        if (fault?.kind === 'slow') await new Promise((r) => setTimeout(r, fault.delayMs));
        if (fault?.kind === 'cut' && up.headers['content-length'] > 1) {
          // Half the promised body, then the connection drops.
          const half = Math.floor(up.headers['content-length'] / 2);
          res.writeHead(up.statusCode, up.headers);
          let sent = 0;
          up.on('data', (c) => {
            if (sent < half) res.write(c.subarray(0, half - sent));
            sent += c.length;
            if (sent >= half) res.socket?.end(); // after the half already written (destroy would drop it)
          });
          return;
        }
        res.writeHead(up.statusCode, up.headers);
        if (req.method === 'GET' && up.statusCode === 200 && record.key !== '') {
          const chunks = [];
          up.on('data', (c) => chunks.push(c));
          up.on('end', () => lastGet.set(record.key, { headers: up.headers, body: Buffer.concat(chunks) }));
        }
        up.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      record.status = 502;
      res.destroy(err);
    });
    if (req.method !== 'PUT' && req.method !== 'POST') {
      req.on('data', (d) => (record.bodyLength += d.length));
      req.pipe(upstream);
      return;
    }
    // As S3 does (and s3rver does not): a PUT whose body arrives incomplete is not stored; one
    // whose Content-MD5 does not match is refused. A POST (a multi-object delete) is checked the
    // same way, must carry Content-MD5 (S3 requires it there) and keeps its body in the record.
    const chunks = [];
    req.on('data', (d) => {
      record.bodyLength += d.length;
      chunks.push(d);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const md5 = req.headers['content-md5'];
      if (req.method === 'POST') {
        record.body = body.toString('utf8');
        if (!md5) {
          upstream.destroy();
          return reply(400, xmlError('InvalidRequest', 'Missing required header for this request: Content-Md5'), {
            'content-type': 'application/xml',
          });
        }
      }
      if (Number(req.headers['content-length'] ?? body.length) !== body.length) {
        upstream.destroy();
        return reply(400, xmlError('IncompleteBody', 'body shorter than Content-Length'), { 'content-type': 'application/xml' });
      }
      if (md5 && createHash('md5').update(body).digest('base64') !== md5) {
        upstream.destroy();
        return reply(400, xmlError('BadDigest', 'Content-MD5 does not match'), { 'content-type': 'application/xml' });
      }
      upstream.end(body);
    });
    req.on('aborted', () => upstream.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    /** For virtual-host tests: needs helpers/resolve-localhost.cjs preloaded in the client. */
    localhostEndpoint: `http://localhost:${port}`,
    requests,
    /** Object PUTs in flight now, and the most seen at once since the last clear(). */
    puts,
    clear() {
      requests.length = 0;
      puts.max = puts.inFlight;
    },
    /** The next `count` GETs of `key` get the answer its last GET got: an eventually consistent store. */
    serveStale(key, count = 1) {
      stale.set(key, count);
    },
    /**
     * Queues `count` faults for the requests `only` (a regex on "METHOD /path") matches:
     * status (answer with `status`), reset (drop the connection before answering), hang (never
     * answer), slow (answer after `delayMs`), cut (half the body, then drop the connection),
     * answer (the proxy answers itself: `status` (default 200), exactly the `headers` given (an
     * object; Content-Length is added), `body` (Buffer or string, default empty); `contentLength`
     * sends that Content-Length instead of the body's true length, then closes the connection
     * after the body (a promise longer or shorter than what arrives); `raw` (Buffer or string)
     * instead writes those bytes to the socket as they are and closes it (not HTTP at all);
     * `forward: true` still sends the request on to the target first (a PUT is stored) and
     * answers the injected answer instead of the target's).
     */
    inject(kind, { count = 1, only = /./, status, delayMs = 500, headers, body, contentLength, raw, forward = false } = {}) {
      status ??= kind === 'answer' ? 200 : 503;
      for (let i = 0; i < count; i++) faults.push({ kind, only, status, delayMs, headers, body, contentLength, raw, forward });
    },
    /** Faults taken so far, by kind; faults still queued. */
    injected,
    pendingFaults: () => faults.length,
    /** The endpoint goes away (connections refused) until up(). */
    listening: true,
    clearFaults() {
      faults.length = 0;
    },
    async down() {
      this.listening = false;
      for (const s of hung) s.destroy();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
    async up() {
      await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
      this.listening = true;
    },
    /** The next requests answer these statuses (e.g. [503, 503]) instead of being served. */
    /** Answers the next requests (those matching `only`, a regex on "METHOD /path") with these statuses. */
    failNext(statuses, only = /./) {
      failures = [...statuses];
      failOnly = only;
    },
    async stop() {
      for (const s of hung) s.destroy();
      agent.destroy();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Registers before/after hooks for a test file: s3rver with bucket "disk", a recording proxy in
 * front of it, and a work directory. The returned object is filled in by the before hook.
 */
export function useRecordedS3(name, { before, after, workdir, startS3Server }) {
  const env = {};
  before(async () => {
    env.server = await startS3Server({ buckets: ['disk'] });
    env.proxy = await startRecordingProxy({ target: env.server });
    env.w = await workdir(name);
  });
  after(async () => {
    await env.w?.cleanup();
    await env.proxy?.stop();
    await env.server?.stop();
  });
  return env;
}
