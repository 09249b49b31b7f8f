// HTTP/1.1 over a pool of keep-alive sockets to one S3 endpoint: one request at a time per socket,
// the request head written as one string, the answer parsed in place. node:http's general client
// (agent bookkeeping, streams, events) cost about half of a 64 KiB GET's CPU on this path; this
// does only what S3 block requests need: Content-Length or chunked bodies, keep-alive, timeouts.

import * as net from 'node:net';
import { tlsModule } from './tlsModule';
import type { IncomingHttpHeaders } from 'node:http';
import type { Proxy } from './proxy';
import type { TlsTrust } from './trust';
import { applyTypeOfService } from './typeOfService';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** No answer (or no complete one): a socket error, a timeout, a cut or malformed answer. */
export class HttpTransportError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** The status a proxy refused a tunnel with (code EPROXY). */
    readonly proxyStatus?: number,
    /** The socket closed or was reset before a byte of the answer came (not a timeout). */
    readonly unanswered = false,
  ) {
    super(message);
    this.name = 'HttpTransportError';
  }
}

export interface HttpConnectionsOptions {
  readonly protocol: 'http:' | 'https:';
  readonly host: string;
  readonly port: number;
  /** Sockets kept open at most (requests beyond them open extra sockets, closed after use). */
  readonly maxIdle: number;
  readonly tls?: TlsTrust | undefined;
  /** Through this HTTP proxy: absolute-form requests for http:, a CONNECT tunnel per socket for https:. */
  readonly proxy?: Proxy | undefined;
  /** Counted per request (sent on a new socket, or on a kept-alive one) and per byte (HTTP, before TLS). */
  readonly counters?: ConnectionCounters | undefined;
  /** Idle sockets older than this are closed rather than reused (default MAX_IDLE_MS). */
  readonly maxIdleMs?: number | undefined;
  /** False: every request on a socket of its own, closed after the answer (--noCurlCache). */
  readonly keepAlive?: boolean | undefined;
  /** The IP type of service of every socket (--ipTOS). */
  readonly typeOfService?: number | undefined;
  /** Told once if the type of service cannot be set. */
  readonly warn?: ((message: string) => void) | undefined;
}

export interface ConnectionCounters {
  created: number;
  reused: number;
  bytesSent: number;
  bytesReceived: number;
  /** Bytes of bodies copied out of the shared read buffer rather than read where they are kept. */
  bodyBytesCopied: number;
  /** Requests sent again at once on a new socket: the kept-alive one closed before answering. */
  resent: number;
}

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Buffer | undefined;
  readonly timeoutMs: number;
  /** A longer body is refused (EOVERSIZED) rather than buffered. */
  readonly maxBodyBytes: number;
  /** A body of exactly this buffer's length is read into it (the caller reuses it) rather than a new one. */
  readonly bodyInto?: Buffer | undefined;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const FORBIDDEN = /[\r\n\0]/;
/** Header lines of an answer, at most: a bigger head is not S3 talking. */
const MAX_HEAD_BYTES = 64 * 1024;
/**
 * Idle sockets older than this are closed rather than reused. S3 closes its side after about 20 s
 * (reported by its users, not documented); a socket it closes earlier is dropped when its FIN
 * arrives, and a request that meets the close on its way out goes again on a new socket.
 */
const MAX_IDLE_MS = 15_000;
/** Over TLS, bodies this long are written apart from their head (one TLS record's worth). */
const SEPARATE_TLS_BODY = 16 * 1024;

/** The answer being read on one socket. */
class Exchange {
  private head: Buffer | undefined;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private body: Buffer | undefined;
  private received = 0;
  /** Body framing: a known length, chunked, or until the socket closes. */
  private mode: 'length' | 'chunked' | 'close' = 'length';
  private chunks: Buffer[] = [];
  private chunkLeft = -1; // chunked: bytes left of the current chunk; -1 = a size line is next
  private pending: Buffer | undefined; // chunked: a partial size or trailer line
  private inTrailers = false;
  keepAlive = true;
  done = false;
  /** Body bytes copied out of a read buffer (not read in place). */
  copied = 0;
  /** Some of the answer has arrived. */
  private started = false;

  constructor(
    private readonly method: string,
    private readonly maxBodyBytes: number,
    private readonly finish: (answer: HttpAnswer | HttpTransportError) => void,
    private readonly bodyInto?: Buffer,
  ) {}

  /** Takes bytes from the socket; throws HttpTransportError on a malformed answer. */
  feed(data: Buffer): void {
    this.started = true;
    let at = 0;
    while (!this.done && at < data.length) {
      if (this.body === undefined && this.mode !== 'chunked' && this.mode !== 'close') at = this.readHead(data, at);
      else if (this.mode === 'chunked') at = this.readChunked(data, at);
      else at = this.readBody(data, at);
    }
    if (this.done && at < data.length) this.keepAlive = false; // bytes nobody asked for: do not reuse
  }

  /**
   * Where the socket's next read may land: the rest of a body of known length, so its bytes
   * arrive in place (the caller's buffer, a cache slot) instead of being copied out of a read
   * buffer. Never more than the body's rest: the next answer's bytes cannot land in it.
   */
  /** No byte of the answer's body can be placed yet: its head has not been parsed. */
  awaitingHead(): boolean {
    return !this.done && this.body === undefined && this.mode === 'length';
  }

  readTarget(): Buffer | undefined {
    const body = this.body;
    if (this.done || this.mode !== 'length' || body === undefined || this.received >= body.length) return undefined;
    return body.subarray(this.received);
  }

  /** The socket closed: an answer framed by the close is complete, anything else is cut. */
  closed(): void {
    if (this.done) return;
    if (this.mode === 'close' && this.body !== undefined) {
      this.complete(this.body.subarray(0, this.received));
      return;
    }
    if (!this.started) this.fail(new HttpTransportError('connection closed before any answer', 'ECONNRESET', undefined, true));
    else this.fail(new HttpTransportError('connection closed in the middle of the answer', 'ESHORT'));
  }

  /** The socket failed (reset, broken pipe): unanswered if no byte of the answer came. */
  lost(code: string, message: string): void {
    this.fail(new HttpTransportError(`${code}: ${message}`, code, undefined, !this.started));
  }

  fail(err: HttpTransportError): void {
    if (this.done) return;
    this.done = true;
    this.keepAlive = false;
    this.finish(err);
  }

  private complete(body: Buffer): void {
    this.done = true;
    this.finish({ status: this.status, headers: this.headers, body });
  }

  private readHead(data: Buffer, at: number): number {
    const start = this.head?.length ?? 0;
    this.head = this.head === undefined ? data.subarray(at) : Buffer.concat([this.head, data.subarray(at)]);
    const end = this.head.indexOf(HEADER_END, Math.max(0, start - 3));
    if (end < 0) {
      if (this.head.length > MAX_HEAD_BYTES) throw new HttpTransportError('answer header too long', 'EPROTO');
      // Kept past this call: `data` may be a read buffer the socket fills again.
      if (start === 0) this.head = Buffer.from(this.head);
      return data.length;
    }
    const consumed = at + (end + 4 - start);
    const lines = this.head.toString('latin1', 0, end).split('\r\n');
    this.head = undefined;
    const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!statusLine) throw new HttpTransportError(`not an HTTP answer: ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`, 'EPROTO');
    const status = Number(statusLine[1]);
    if (status >= 100 && status < 200) return consumed; // an interim answer: the real one follows
    const headers: IncomingHttpHeaders = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HttpTransportError('malformed answer header', 'EPROTO');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const prior = headers[name];
      headers[name] = prior === undefined ? value : `${String(prior)}, ${value}`;
    }
    this.status = status;
    this.headers = headers;
    if (/\bclose\b/i.test(String(headers['connection'] ?? ''))) this.keepAlive = false;
    const bodiless = this.method === 'HEAD' || status === 204 || status === 304;
    const te = String(headers['transfer-encoding'] ?? '');
    if (bodiless) {
      this.complete(Buffer.alloc(0));
    } else if (/\bchunked\b/i.test(te)) {
      this.mode = 'chunked';
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (!Number.isSafeInteger(length) || length < 0) throw new HttpTransportError('malformed Content-Length', 'EPROTO');
      if (length > this.maxBodyBytes) {
        throw new HttpTransportError(`response body of ${length} bytes is larger than any block object`, 'EOVERSIZED');
      }
      // One buffer of the declared length (the caller's, if it fits exactly): the body is copied once.
      this.body = this.bodyInto?.length === length && status === 200 ? this.bodyInto : Buffer.allocUnsafe(length);
      if (length === 0) this.complete(this.body);
    } else {
      // Neither: the body runs until the server closes the connection.
      this.mode = 'close';
      this.keepAlive = false;
      this.body = Buffer.allocUnsafe(0);
    }
    return consumed;
  }

  private readBody(data: Buffer, at: number): number {
    const body = this.body!;
    if (this.mode === 'close') {
      const incoming = data.length - at;
      if (this.received + incoming > this.maxBodyBytes) {
        throw new HttpTransportError(`response body longer than ${this.maxBodyBytes} bytes`, 'EOVERSIZED');
      }
      const grown =
        body.length >= this.received + incoming ? body : Buffer.allocUnsafe(Math.max(2 * body.length, this.received + incoming));
      if (grown !== body) body.copy(grown, 0, 0, this.received);
      data.copy(grown, this.received, at);
      this.body = grown;
      this.received += incoming;
      return data.length;
    }
    const n = Math.min(data.length - at, body.length - this.received);
    const inPlace = at === 0 && data.buffer === body.buffer && data.byteOffset === body.byteOffset + this.received;
    if (!inPlace) {
      data.copy(body, this.received, at, at + n);
      this.copied += n;
    }
    this.received += n;
    if (this.received === body.length) this.complete(body);
    return at + n;
  }

  private readChunked(data: Buffer, at: number): number {
    if (this.chunkLeft > 0) {
      const n = Math.min(data.length - at, this.chunkLeft);
      this.received += n;
      if (this.received > this.maxBodyBytes)
        throw new HttpTransportError(`response body longer than ${this.maxBodyBytes} bytes`, 'EOVERSIZED');
      this.chunks.push(Buffer.from(data.subarray(at, at + n)));
      this.chunkLeft -= n;
      if (this.chunkLeft === 0) this.chunkLeft = -2; // the CRLF after the data is next
      return at + n;
    }
    // A line: a chunk size, the CRLF after a chunk's data, or a trailer.
    const eol = data.indexOf('\n', at);
    const part = data.subarray(at, eol < 0 ? data.length : eol + 1);
    this.pending = this.pending === undefined ? Buffer.from(part) : Buffer.concat([this.pending, part]);
    if (this.pending.length > 4096) throw new HttpTransportError('malformed chunked body', 'EPROTO');
    if (eol < 0) return data.length;
    const line = this.pending.toString('latin1').replace(/\r?\n$/, '');
    this.pending = undefined;
    if (this.chunkLeft === -2) {
      if (line !== '') throw new HttpTransportError('malformed chunked body', 'EPROTO');
      this.chunkLeft = -1;
    } else if (this.inTrailers) {
      if (line === '') this.complete(Buffer.concat(this.chunks, this.received));
    } else {
      const size = /^([0-9a-fA-F]{1,8})(;.*)?$/.exec(line.trim());
      if (!size) throw new HttpTransportError('malformed chunk size', 'EPROTO');
      const n = parseInt(size[1]!, 16);
      if (n === 0) this.inTrailers = true;
      else this.chunkLeft = n;
    }
    return eol + 1;
  }
}

/** One socket and the exchange on it, if any. */
interface Connection {
  readonly socket: net.Socket;
  exchange: Exchange | undefined;
  idleSince: number;
}

export class HttpConnections {
  private readonly idle: Connection[] = [];
  private closed = false;
  private tosWarned = false;
  private readonly encrypted: boolean;
  /** What precedes a path on the request line: the origin for a request through a proxy. */
  private readonly target: string;
  /** The header line sent to the proxy on each request, if any. */
  private readonly proxyHeader: string;

  constructor(private readonly options: HttpConnectionsOptions) {
    const { proxy, protocol, host, port } = options;
    this.encrypted = protocol === 'https:';
    const forward = proxy !== undefined && protocol === 'http:';
    this.target = forward ? `http://${net.isIPv6(host) ? `[${host}]` : host}:${port}` : '';
    this.proxyHeader = forward && proxy.authorization !== undefined ? `proxy-authorization: ${proxy.authorization}\r\n` : '';
  }

  request(req: HttpRequest): Promise<HttpAnswer> {
    if (this.closed) return Promise.reject(new HttpTransportError('the connection pool is closed', 'ECLOSED'));
    let head = `${req.method} ${this.target}${req.path} HTTP/1.1\r\n${this.proxyHeader}`;
    for (const name in req.headers) {
      const value = req.headers[name]!;
      // A value with a line break would smuggle a header (or a request) in.
      if (FORBIDDEN.test(name) || FORBIDDEN.test(value))
        return Promise.reject(new TypeError(`invalid character in header ${JSON.stringify(name)}`));
      head += `${name}: ${value}\r\n`;
    }
    head += '\r\n';
    const idle = this.reusable();
    if (idle === undefined) return this.fresh(head, req);
    const counters = this.options.counters;
    if (counters) counters.reused++;
    return this.exchange(idle, head, req, true);
  }

  /** The request on a new socket (through the proxy's tunnel for https: through a proxy). */
  private fresh(head: string, req: HttpRequest): Promise<HttpAnswer> {
    if (this.options.counters) this.options.counters.created++;
    const { proxy, protocol } = this.options;
    if (proxy !== undefined && protocol === 'https:') {
      // Each new socket first asks the proxy for a tunnel; TLS then runs inside it.
      return openTunnel(proxy, this.options.host, this.options.port, req.timeoutMs).then((raw) =>
        this.exchange(this.connect(raw), head, req),
      );
    }
    return this.exchange(this.connect(), head, req);
  }

  /**
   * The most recently used idle socket, if it has not idled longer than MAX_IDLE_MS (older ones
   * are closed): one the server closed is already gone from the list, once its FIN came.
   */
  private reusable(): Connection | undefined {
    const fresh = Date.now() - (this.options.maxIdleMs ?? MAX_IDLE_MS);
    const i = this.idle.findIndex((c) => c.idleSince >= fresh);
    for (const stale of this.idle.splice(0, i < 0 ? this.idle.length : i)) stale.socket.destroy();
    return this.idle.pop();
  }

  /** `reused`: the socket was kept alive; a request it gets no answer to at all goes again. */
  private exchange(conn: Connection, head: string, req: HttpRequest, reused = false): Promise<HttpAnswer> {
    return new Promise<HttpAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        exchange.fail(new HttpTransportError(`request timed out after ${req.timeoutMs} ms`, 'ETIMEDOUT'));
      }, req.timeoutMs);
      const exchange = new Exchange(
        req.method,
        req.maxBodyBytes,
        (answer) => {
          clearTimeout(timer);
          conn.exchange = undefined;
          if (this.options.counters) this.options.counters.bodyBytesCopied += exchange.copied;
          if (
            exchange.keepAlive &&
            this.options.keepAlive !== false &&
            !this.closed &&
            this.idle.length < this.options.maxIdle &&
            !conn.socket.destroyed
          ) {
            conn.idleSince = Date.now();
            this.idle.push(conn); // oldest first
          } else conn.socket.destroy();
          if (!(answer instanceof HttpTransportError)) resolve(answer);
          else if (reused && answer.unanswered && !this.closed) {
            // A server closes an idle keep-alive socket when it likes; a request that went out as
            // it did gets no answer at all. It goes again at once on a new socket, as curl does,
            // rather than through the retry layer's pause: the server never saw it. A request that
            // timed out, or got part of an answer, is not sent again here.
            if (this.options.counters) this.options.counters.resent++;
            resolve(this.fresh(head, req));
          } else reject(answer);
        },
        req.bodyInto,
      );
      conn.exchange = exchange;
      const counters = this.options.counters;
      if (counters) counters.bytesSent += head.length + (req.body?.length ?? 0); // the head is latin1: a byte a character
      const body = req.body !== undefined && req.body.length > 0 ? req.body : undefined;
      // Corked, head and body go out in one system call. A TLS socket given two buffers at once
      // copies them into a fresh one before encrypting (node's TLSWrap), a whole block per PUT
      // whose memory then stays with the process: there a large body goes in a write of its own.
      const together = body === undefined || !this.encrypted || body.length < SEPARATE_TLS_BODY;
      if (together) conn.socket.cork();
      conn.socket.write(head, 'latin1');
      if (body !== undefined) conn.socket.write(body);
      if (together) conn.socket.uncork();
    });
  }

  /** A new socket to the endpoint (or to the proxy); `tunnel`: TLS inside this proxy tunnel. */
  private connect(tunnel?: net.Socket): Connection {
    const { host, port, proxy, typeOfService } = this.options;
    let onRead: ReadInto | undefined;
    const socket =
      this.options.protocol === 'https:'
        ? tlsModule().connect({
            // host stays: the certificate is checked against it, not against the proxy's name.
            ...(tunnel === undefined ? { host, port } : { socket: tunnel, host }),
            servername: net.isIP(host) === 0 ? host : undefined,
            rejectUnauthorized: this.options.tls?.rejectUnauthorized ?? true,
            secureContext: this.options.tls?.secureContext,
            ALPNProtocols: ['http/1.1'],
            // Decrypted bytes go where the plain socket's land (node ignores onread in a tunnel).
            ...(tunnel === undefined ? { onread: (onRead = readInto(READ_BUFFER)) } : {}),
          })
        : proxy !== undefined
          ? net.connect({ host: proxy.host, port: proxy.port })
          : net.connect({ host, port, onread: (onRead = readInto(READ_BUFFER)) });
    if (typeOfService !== undefined) {
      applyTypeOfService(socket, typeOfService, (message) => {
        if (!this.tosWarned) this.options.warn?.(message);
        this.tosWarned = true;
      });
    }
    socket.setNoDelay(true);
    const conn: Connection = { socket, exchange: undefined, idleSince: 0 };
    const counters = this.options.counters;
    const take = (data: Buffer): void => {
      if (counters) counters.bytesReceived += data.length;
      const exchange = conn.exchange;
      if (exchange === undefined) {
        socket.destroy(); // an idle socket talking: not a state to reuse
        return;
      }
      try {
        exchange.feed(data);
      } catch (err) {
        exchange.fail(err as HttpTransportError);
      }
    };
    if (onRead === undefined) socket.on('data', take);
    else {
      onRead.take = take;
      onRead.target = () => conn.exchange?.readTarget();
      onRead.headFirst = () => conn.exchange?.awaitingHead() ?? true;
    }
    const gone = (err?: Error): void => {
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      const exchange = conn.exchange;
      if (exchange === undefined) return;
      if (err) exchange.lost((err as { code?: string }).code ?? 'ECONNRESET', err.message);
      else exchange.closed();
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
    socket.on('end', () => gone());
    return conn;
  }

  /** Closes the idle sockets; those in use close when their request ends. */
  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.socket.destroy();
  }
}

/** Answer heads longer than this are not a proxy talking. */
const MAX_PROXY_HEAD = 16 * 1024;

/**
 * A socket to `host:port` through the proxy's CONNECT tunnel: the bytes after the proxy's 200 are
 * the target's. Fails with HttpTransportError (code EPROXY) when the proxy refuses, with the
 * status it gave, or ETIMEDOUT.
 */
export function openTunnel(proxy: Proxy, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    socket.setNoDelay(true);
    let head = Buffer.alloc(0);
    const fail = (err: HttpTransportError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new HttpTransportError(`proxy ${proxy.display}: no answer to CONNECT ${authority} within ${timeoutMs} ms`, 'ETIMEDOUT')),
      timeoutMs,
    );
    const onData = (data: Buffer): void => {
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_PROXY_HEAD) fail(new HttpTransportError(`proxy ${proxy.display}: answer to CONNECT too long`, 'EPROXY'));
        return;
      }
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      if (!status) return fail(new HttpTransportError(`proxy ${proxy.display}: not an HTTP answer to CONNECT ${authority}`, 'EPROXY'));
      if (status[1]![0] !== '2') {
        const why = `${status[1]}${status[2] ? ` ${status[2]}` : ''}`;
        const hint =
          status[1] === '407'
            ? proxy.authorization
              ? ' (the user name or password in the proxy URL was refused)'
              : ' (the proxy wants a user name and password in its URL)'
            : '';
        return fail(
          new HttpTransportError(`proxy ${proxy.display} refused the tunnel to ${authority}: ${why}${hint}`, 'EPROXY', Number(status[1])),
        );
      }
      // The target speaks only after our TLS hello: bytes already here are the proxy misbehaving.
      if (end + 4 < head.length) return fail(new HttpTransportError(`proxy ${proxy.display}: bytes after its answer to CONNECT`, 'EPROXY'));
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve(socket);
    };
    const onError = (err: Error): void => {
      const code = (err as { code?: string }).code ?? 'ECONNRESET';
      fail(new HttpTransportError(`proxy ${proxy.display}: ${code}: ${err.message}`, code));
    };
    const onClose = (): void =>
      fail(new HttpTransportError(`proxy ${proxy.display} closed the connection before answering CONNECT ${authority}`, 'ECONNRESET'));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : ''}\r\n`,
      'latin1',
    );
  });
}

/**
 * Sockets read into one buffer shared by all of them (`onread`; over TLS the decrypted bytes, a
 * 16 KiB record at a time): no buffer is allocated per read and no stream machinery runs per
 * chunk. Over TLS that took a cold read's CPU from 1.15 to 0.89 s and its peak memory from 399 to
 * 351 MiB (docs/performance.md); a TLS socket inside a proxy's tunnel still emits 'data'. The bytes are only valid during the callback,
 * so the parser copies what it keeps. Once an answer's head is parsed, the reads go straight into
 * its body instead (`target`): a block arrives where it is kept, with no copy at all. Until then
 * a read takes at most HEAD_READ bytes: a whole answer is often waiting by the time it is read,
 * and one 256 KiB read would bring nearly all of a block's body into the shared buffer, to be
 * copied out (a sixteenth of a cold read's CPU); a head is a few hundred bytes.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
const HEAD_READ = 4096;

interface ReadInto {
  /** Asked after every read (and once at the start) for where the next one lands. */
  buffer: () => Buffer;
  callback: (bytes: number, buffer: Buffer) => boolean;
  take: (data: Buffer) => void;
  target: () => Buffer | undefined;
  /** The next bytes are (or may be) an answer's head: read only a little of what waits. */
  headFirst: () => boolean;
}

function readInto(shared: Buffer): ReadInto {
  const head = shared.subarray(0, HEAD_READ);
  const r: ReadInto = {
    buffer: () => r.target() ?? (r.headFirst() ? head : shared),
    callback: (bytes, buf) => {
      r.take(buf.subarray(0, bytes));
      return true;
    },
    take: () => {},
    target: () => undefined,
    headFirst: () => true,
  };
  return r;
}
