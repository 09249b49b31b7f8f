// Our HTTP/1.1 client for block requests (src/backend/s3/httpConnections.ts), against a TCP server
// that writes answers byte for byte as a test needs them: split heads, chunked and close-framed
// bodies, interim answers, keep-alive and its refusal, timeouts, cut and malformed answers.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';

import { HttpConnections, HttpTransportError } from '../../dist/backend/s3/httpConnections.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @typedef {import('node:net').AddressInfo} AddressInfo */

/** The server: each request's head goes to `answer(head, socket, connectionNumber)`. */
/** @type {net.Server} */
let server;
let port;
let answer;
let connections = 0;
const received = [];
/** The server's open sockets: a failing test leaves its client's busy sockets open, and the file must still end. */
const serverSockets = new Set();
before(async () => {
  server = net.createServer((socket) => {
    const n = ++connections;
    serverSockets.add(socket);
    socket.on('close', () => serverSockets.delete(socket));
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const body = buf.subarray(end + 4, end + 4 + length);
        buf = buf.subarray(end + 4 + length);
        received.push({ head, body, connection: n });
        answer(head, socket, n, body);
      }
    });
    socket.on('error', () => {});
  });
  await /** @type {Promise<void>} */ (new Promise((r) => server.listen(0, '127.0.0.1', r)));
  port = /** @type {AddressInfo} */ (server.address()).port;
});
after(() => {
  for (const socket of serverSockets) socket.destroy();
  server.close();
});

const pool = (maxIdle = 4) => new HttpConnections({ protocol: 'http:', host: '127.0.0.1', port, maxIdle });
const get = (p, path = '/k', extra = {}) =>
  p.request({ method: 'GET', path, headers: { host: 'x' }, timeoutMs: 2000, maxBodyBytes: 1 << 20, ...extra });

/** Writes the pieces with a pause between, so they arrive as separate reads. */
async function dribble(socket, pieces) {
  for (const piece of pieces) {
    socket.write(piece);
    await sleep(5);
  }
}

test('a head and body split anywhere, even byte by byte, parse the same; the socket is reused', async () => {
  const p = pool();
  const text = 'HTTP/1.1 200 OK\r\nETag: "abc"\r\nx-amz-meta-One: 1\r\nx-amz-meta-one: 2\r\nContent-Length: 5\r\n\r\nhello';
  answer = (head, socket) => dribble(socket, [...text]);
  const first = await get(p);
  assert.equal(first.status, 200);
  assert.equal(first.body.toString(), 'hello');
  assert.equal(first.headers.etag, '"abc"');
  assert.equal(first.headers['x-amz-meta-one'], '1, 2', 'repeated headers are joined, names lower-cased');
  answer = (head, socket) => socket.write(text); // all in one read, head and body together
  const second = await get(p);
  assert.equal(second.body.toString(), 'hello');
  const [a, b] = received.slice(-2);
  assert.equal(a.connection, b.connection, 'the kept-alive socket served the second request');
  assert.match(a.head, /^GET \/k HTTP\/1\.1\r\nhost: x$/);
  p.close();
});

test('bodyInto: a 200 body of exactly its length is read into it; another length or status gets its own buffer', async () => {
  const p = pool();
  const into = Buffer.alloc(5, 0x2e);
  answer = (head, socket) => dribble(socket, ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe', 'llo']);
  const fits = await get(p, '/k', { bodyInto: into });
  assert.equal(fits.body, into, "the caller's buffer, filled");
  assert.equal(into.toString(), 'hello');
  answer = (head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello!');
  const longer = await get(p, '/k', { bodyInto: into });
  assert.notEqual(longer.body, into);
  assert.equal(longer.body.toString(), 'hello!');
  answer = (head, socket) => socket.write('HTTP/1.1 503 Slow Down\r\nContent-Length: 5\r\n\r\nslow!');
  const failed = await get(p, '/k', { bodyInto: into });
  assert.equal(failed.status, 503);
  assert.notEqual(failed.body, into, "an error answer never lands in the caller's buffer");
  assert.equal(into.toString(), 'hello', 'which keeps what it had');
  p.close();
});

test('a block body waiting whole in the socket lands in its buffer, not copied out of the shared read buffer', async () => {
  const counters = { created: 0, reused: 0, bytesSent: 0, bytesReceived: 0, bodyBytesCopied: 0, resent: 0 };
  const p = new HttpConnections({ protocol: 'http:', host: '127.0.0.1', port, maxIdle: 4, counters });
  const block = Buffer.alloc(256 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7) & 0xff;
  // Head and body in one write: the whole answer is in the socket before the client reads any.
  answer = (head, socket) =>
    socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${block.length}\r\n\r\n`), block]));
  try {
    for (let round = 0; round < 3; round++) {
      const into = Buffer.alloc(block.length);
      const got = await get(p, '/k', { bodyInto: into });
      assert.equal(got.body, into);
      assert.ok(into.equals(block), 'every byte, in order');
    }
    assert.ok(counters.bodyBytesCopied < 3 * 4096, `only what came with each head was copied (${counters.bodyBytesCopied} bytes)`);
  } finally {
    p.close();
  }
});

test('answers arriving piecewise on several sockets at once keep their own bytes (the sockets share one read buffer)', async () => {
  const p = pool();
  const slow = 'HTTP/1.1 200 OK\r\nETag: "slow"\r\nx-amz-meta-which: the-slow-one\r\nContent-Length: 6\r\n\r\nslow!!';
  const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n';
  const big = Buffer.alloc(300 * 1024, 0xbb);
  answer = (head, socket) => {
    if (head.startsWith('GET /slow')) return dribble(socket, slow.match(/.{1,7}/gs));
    if (head.startsWith('GET /chunked')) return dribble(socket, chunked.match(/.{1,5}/gs));
    // Meanwhile another socket's reads fill the shared buffer again and again.
    return dribble(socket, [
      `HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`,
      ...Array.from({ length: 12 }, (_, i) => big.subarray(i * 25600, (i + 1) * 25600)),
    ]);
  };
  const [a, b, c] = await Promise.all([get(p, '/slow'), get(p, '/chunked'), get(p, '/big')]);
  assert.equal(a.headers.etag, '"slow"');
  assert.equal(a.headers['x-amz-meta-which'], 'the-slow-one');
  assert.equal(a.body.toString(), 'slow!!');
  assert.equal(b.body.toString(), 'chunked');
  assert.ok(c.body.equals(big));
  p.close();
});

test('chunked bodies (extensions, trailers, split lines) and bodies framed by the close', async () => {
  const p = pool();
  answer = (head, socket) =>
    dribble(socket, [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r',
      '\nhel',
      'lo\r\n',
      '6\r\n world\r\n0\r\nX-Trailer: t\r\n',
      '\r\n',
    ]);
  assert.equal((await get(p)).body.toString(), 'hello world');
  answer = (head, socket) => dribble(socket, ['HTTP/1.1 200 OK\r\n\r\nuntil ', 'the end']).then(() => socket.end());
  assert.equal((await get(p)).body.toString(), 'until the end');
  p.close();
});

test('an interim 100 answer is skipped; HEAD and 304 have no body; Connection: close is obeyed', async () => {
  const p = pool();
  answer = (head, socket) => socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n');
  assert.equal((await get(p)).status, 204);
  answer = (head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n');
  const head = await p.request({ method: 'HEAD', path: '/k', headers: {}, timeoutMs: 2000, maxBodyBytes: 10 });
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['content-length'], '99');
  answer = (head, socket) => socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok');
  await get(p);
  await get(p);
  const [a, b] = received.slice(-2);
  assert.notEqual(a.connection, b.connection, 'a socket the server closes is not reused');
  p.close();
});

test('a PUT body follows its head; a value with a line break is refused before anything is sent', async () => {
  const p = pool();
  answer = (head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  const body = Buffer.from('0123456789');
  await p.request({ method: 'PUT', path: '/k', headers: { 'content-length': '10' }, body, timeoutMs: 2000, maxBodyBytes: 10 });
  assert.ok(received.at(-1).body.equals(body));
  const before = received.length;
  await assert.rejects(
    p.request({ method: 'GET', path: '/k', headers: { 'x-amz-meta-a': 'v\r\nx-evil: 1' }, timeoutMs: 2000, maxBodyBytes: 10 }),
    TypeError,
  );
  await sleep(20);
  assert.equal(received.length, before, 'nothing went out');
  p.close();
});

test('no answer, a cut answer, a slow one, an oversized or malformed one: each a clear transport error', async () => {
  const p = pool();
  const fails = async (code, pattern) => {
    const err = await get(p).then(
      () => assert.fail('expected a failure'),
      (e) => e,
    );
    assert.ok(err instanceof HttpTransportError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
  };
  answer = (head, socket) => socket.destroy();
  await fails('ECONNRESET', /closed before any answer|ECONNRESET/);
  answer = (head, socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort');
  await fails('ESHORT', /middle of the answer/);
  answer = () => {}; // never answers
  const started = Date.now();
  await assert.rejects(
    get(p, '/k', { timeoutMs: 200 }),
    (/** @type {NodeJS.ErrnoException} */ e) => e.code === 'ETIMEDOUT' && /timed out after 200 ms/.test(e.message),
  );
  assert.ok(Date.now() - started < 1500);
  answer = (head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n');
  await fails('EOVERSIZED', /larger than any block object/);
  answer = (head, socket) => socket.write('SSH-2.0-OpenSSH\r\n\r\n');
  await fails('EPROTO', /not an HTTP answer/);
  answer = (head, socket) => socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
  await fails('EPROTO', /chunk size/);
  // After all that, a good answer still comes through (broken sockets were not reused).
  answer = (head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  assert.equal((await get(p)).body.toString(), 'ok');
  p.close();
});

test('a refused connection is an error with its code', async () => {
  const closed = net.createServer();
  await /** @type {Promise<void>} */ (new Promise((r) => closed.listen(0, '127.0.0.1', r)));
  const deadPort = /** @type {AddressInfo} */ (closed.address()).port;
  await new Promise((r) => closed.close(r));
  const p = new HttpConnections({ protocol: 'http:', host: '127.0.0.1', port: deadPort, maxIdle: 1 });
  await assert.rejects(get(p), (/** @type {NodeJS.ErrnoException} */ e) => e.code === 'ECONNREFUSED' && /ECONNREFUSED/.test(e.message));
  p.close();
});

test('a kept-alive socket that closes as a request goes out: the request goes again at once on a new socket', async () => {
  for (const cut of ['end', 'reset']) {
    const counters = { created: 0, reused: 0, bytesSent: 0, bytesReceived: 0, bodyBytesCopied: 0, resent: 0 };
    const p = new HttpConnections({ protocol: 'http:', host: '127.0.0.1', port, maxIdle: 4, counters });
    const ok = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
    answer = (head, socket) => socket.write(ok);
    await get(p);
    const first = received.at(-1).connection;
    // The server drops the socket it kept alive the moment the next request arrives on it.
    answer = (head, socket, n) => {
      if (n !== first) return socket.write(ok);
      if (cut === 'reset') socket.resetAndDestroy();
      else socket.destroy();
    };
    const before = received.length;
    const started = Date.now();
    const body = Buffer.from('0123456789');
    const res = await p.request({
      method: 'PUT',
      path: '/k',
      headers: { 'content-length': '10' },
      body,
      timeoutMs: 2000,
      maxBodyBytes: 10,
    });
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started < 1000, 'no retry pause');
    const sent = received.slice(before);
    assert.deepEqual(
      sent.map((r) => r.connection === first),
      [true, false],
      `${cut}: sent on the kept-alive socket, then once on a new one`,
    );
    assert.ok(sent[1].body.equals(body), 'the body went again whole');
    assert.equal(counters.resent, 1);
    assert.equal(counters.created, 2);
    p.close();
  }
});

test('a request is not sent again by the pool when its socket was new, it timed out, or part of an answer came', async () => {
  const p = pool();
  const ok = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
  const sentFor = async (respond, code, extra = {}) => {
    answer = (head, socket) => socket.write(ok);
    await get(p); // a socket to keep alive
    answer = respond;
    const before = received.length;
    await assert.rejects(get(p, '/k', extra), (/** @type {NodeJS.ErrnoException} */ e) => e.code === code);
    return received.length - before;
  };
  assert.equal(await sentFor((head, socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok'), 'ESHORT'), 1);
  assert.equal(await sentFor(() => {}, 'ETIMEDOUT', { timeoutMs: 150 }), 1);
  // Every socket closes unanswered: the kept-alive one, then the new one; that failure is the caller's.
  assert.equal(await sentFor((head, socket) => socket.destroy(), 'ECONNRESET'), 2);
  p.close();
});

test('an idle socket older than maxIdleMs is closed, not reused', async () => {
  const p = new HttpConnections({ protocol: 'http:', host: '127.0.0.1', port, maxIdle: 4, maxIdleMs: 100 });
  const sockets = new Map();
  answer = (head, socket, n) => {
    sockets.set(n, socket);
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  };
  await get(p);
  await get(p);
  const [a, b] = received.slice(-2);
  assert.equal(a.connection, b.connection, 'reused within the limit');
  const closed = new Promise((r) => sockets.get(b.connection).once('close', r));
  await sleep(200);
  await get(p);
  assert.notEqual(received.at(-1).connection, b.connection, 'a new socket after the limit');
  await closed; // the stale one was closed by the client
  p.close();
});

test('against a server closing sockets idle 40 ms, requests 30-50 ms apart all get their answer', { timeout: 30000 }, async () => {
  const counters = { created: 0, reused: 0, bytesSent: 0, bytesReceived: 0, bodyBytesCopied: 0, resent: 0 };
  const p = new HttpConnections({ protocol: 'http:', host: '127.0.0.1', port, maxIdle: 4, counters });
  // Each answer starts the socket's idle clock: 40 ms without a request, and the server ends it.
  answer = (head, socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    if (socket.listenerCount('timeout') === 0) socket.on('timeout', () => socket.end());
    socket.setTimeout(40);
  };
  for (let i = 0; i < 150; i++) {
    assert.equal((await get(p)).body.toString(), 'ok');
    await sleep(30 + (i % 21));
  }
  assert.ok(
    counters.created > 10 && counters.reused > 10,
    `${JSON.stringify(counters)}: the server closed some sockets, others were reused`,
  );
  p.close();
});
