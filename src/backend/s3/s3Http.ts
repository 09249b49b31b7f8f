// Signed S3 requests on our own keep-alive sockets (httpConnections.ts): the block hot path (GET,
// PUT, HEAD, DELETE of one object) costs one SigV4 signature and one request. The SDK's command
// pipeline (endpoint rules, serde, middleware) cost several times the request itself, node:http's
// general client about as much again (bench/requests.mjs); signing stays the SDK's SignatureV4
// and credentials come from the SDK's providers.

import type * as http from 'node:http';
import { isIP } from 'node:net';
import { HttpConnections, HttpTransportError, type HttpConnectionsOptions } from './httpConnections';
import type { Proxy } from './proxy';
import type { TlsTrust } from './trust';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { S3Latencies } from '../../stats/latency';

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
  readonly expiration?: Date | undefined;
}

export type CredentialProvider = () => Promise<S3Credentials>;

/** An answer S3 gave with an error status, or no answer at all (status undefined). */
export class S3HttpError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    /** S3's error code from the body (NoSuchKey, SlowDown, ...), or a socket error code. */
    readonly code: string | undefined,
    /** The region S3 says the bucket is in, when it is not the one we sign for: no retry helps. */
    readonly bucketRegion?: string,
  ) {
    super(message);
    this.name = 'S3HttpError';
  }
}

/** The credential provider failed: nothing was sent. */
export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsProviderError';
  }
}

export interface S3Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface S3HttpOptions {
  readonly baseURL: string;
  readonly bucket: string;
  readonly vhost: boolean;
  readonly region: string;
  /** undefined: anonymous, requests go unsigned. */
  readonly credentials: CredentialProvider | undefined;
  /** Limit on one attempt, connect to last byte. */
  readonly timeoutMs: number;
  /** Sockets kept open for reuse (the request concurrency). */
  readonly maxSockets: number;
  /** TLS: whether to check the server's certificate, and extra CAs to trust. */
  readonly tls?: TlsTrust | undefined;
  /** Bodies longer than this are refused (a block's object can never be). */
  readonly maxBodyBytes: number;
  /** Called after every attempt (for --debug-http). */
  readonly onAttempt?: ((line: string, outcome: string, ms: number) => void) | undefined;
  /** Where each attempt's duration is counted, by method (--metricsPort histograms). */
  readonly latency?: S3Latencies | undefined;
  /** The HTTP proxy for requests to this URL (the bucket's host, see proxy.ts); none: direct. */
  readonly proxyFor?: ((url: URL) => Proxy | undefined) | undefined;
  /** How sockets are counted, kept and set up (--noCurlCache, --ipTOS). */
  readonly connections?: Pick<HttpConnectionsOptions, 'counters' | 'keepAlive' | 'typeOfService' | 'warn'> | undefined;
  /** Told when S3 said our clock is off and requests are signed with its time from then on. */
  readonly onClockOffset?: ((offsetMs: number) => void) | undefined;
}

/**
 * SignatureV4's hash interface over node:crypto. The signer recomputes one HMAC on every request
 * only to name its signing-key cache entry (secret key over access key ID, the same each time):
 * the last such short HMAC is remembered, which takes about a tenth off the cost of a signature.
 */
class NodeSha256 {
  private static memo: { secret: string; data: Uint8Array; digest: Uint8Array } | undefined;
  private hash: Hash | Hmac | undefined;
  /** The single update of an HMAC keyed by a string, held back until digest() in case it is memoized. */
  private held: Uint8Array | undefined;

  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    if (typeof secret !== 'string') this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }

  update(data: string | ArrayBuffer | ArrayBufferView): void {
    const bytes = toBytes(data);
    if (this.hash === undefined && this.held === undefined && typeof bytes !== 'string' && bytes.length <= 128) {
      this.held = bytes;
      return;
    }
    this.started().update(bytes);
  }

  digest(): Promise<Uint8Array> {
    const { held, secret } = this;
    if (held !== undefined && typeof secret === 'string' && this.hash === undefined) {
      const m = NodeSha256.memo;
      if (m !== undefined && m.secret === secret && Buffer.compare(m.data, held) === 0) return Promise.resolve(m.digest);
      const digest = createHmac('sha256', secret).update(held).digest();
      NodeSha256.memo = { secret, data: Uint8Array.from(held), digest };
      return Promise.resolve(digest);
    }
    return Promise.resolve(this.started().digest());
  }

  private started(): Hash | Hmac {
    if (this.hash === undefined) {
      this.hash = createHmac('sha256', toBytes(this.secret as string));
      if (this.held !== undefined) this.hash.update(this.held);
      this.held = undefined;
    }
    return this.hash;
  }
}

function toBytes(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === 'string') return data;
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const REFRESH_BEFORE_MS = 5 * 60 * 1000;

/** One provider call at a time, its answer kept until five minutes before it expires. */
export function memoizeCredentials(provider: CredentialProvider): CredentialProvider {
  let pending: Promise<S3Credentials> | undefined;
  let current: S3Credentials | undefined;
  return () => {
    const expiring = current?.expiration !== undefined && current.expiration.getTime() - Date.now() < REFRESH_BEFORE_MS;
    if (pending === undefined || expiring) {
      const p = provider().then(
        (c) => {
          current = c;
          return c;
        },
        (err: unknown) => {
          if (pending === p) pending = undefined;
          throw new CredentialsError((err as Error).message ?? String(err));
        },
      );
      pending = p;
    }
    return pending;
  };
}

const PLAIN_KEY = /^[A-Za-z0-9\-._~/]*$/;

/** S3's URI encoding of a key: every byte but unreserved characters and '/'. */
export function encodeKey(key: string): string {
  if (PLAIN_KEY.test(key)) return key; // block keys: nothing to encode
  return encodeURIComponent(key)
    .replace(/%2F/g, '/')
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Whether `bucket.host` names the bucket: not for IP addresses, nor dotted names under TLS. */
function canBeHostLabel(bucket: string, url: URL): boolean {
  if (isIP(url.hostname.replace(/^\[|\]$/g, '')) !== 0) return false;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || /\.\.|\.-|-\./.test(bucket)) return false;
  return !(bucket.includes('.') && url.protocol === 'https:');
}

/** The code, message and region of an S3 XML error body, where it has them. */
function errorDetail(body: Buffer): { code: string | undefined; message: string | undefined; region: string | undefined } {
  const text = body.subarray(0, 4096).toString('utf8');
  const tag = (name: string): string | undefined => new RegExp(`<${name}>([^<]*)</${name}>`).exec(text)?.[1];
  return { code: tag('Code'), message: tag('Message'), region: tag('Region') };
}

/** Errors S3 gives a request signed with a time too far from its own (the SDK's list). */
const CLOCK_SKEW_CODES = new Set(['RequestTimeTooSkewed', 'RequestExpired', 'RequestInTheFuture']);
/** A clock offset smaller than this is not worth correcting: S3 allows 15 minutes. */
const CLOCK_SKEW_MIN_MS = 60 * 1000;

/**
 * The clock offset S3's Date says we have, when this answer refused our signature's time and
 * the offset differs from the one we sign with; undefined otherwise.
 */
function skewOf(res: S3Response, currentOffsetMs: number): number | undefined {
  if (res.status !== 403 && res.status !== 400) return undefined;
  const { code } = errorDetail(res.body);
  if (code === undefined || !CLOCK_SKEW_CODES.has(code)) return undefined;
  const serverTime = Date.parse(String(res.headers.date ?? ''));
  if (Number.isNaN(serverTime)) return undefined;
  const offset = serverTime - Date.now();
  return Math.abs(offset - currentOffsetMs) >= CLOCK_SKEW_MIN_MS ? offset : undefined;
}

export class S3Http {
  private readonly protocol: 'http:' | 'https:';
  private readonly hostname: string;
  private readonly hostHeader: string;
  private readonly bucketPath: string;
  private readonly signer: SignatureV4 | undefined;
  private readonly connections: HttpConnections;
  /** The proxy every request goes through, if any. */
  readonly proxy: Proxy | undefined;
  /** S3's clock minus ours, as its last clock-skew answer said (the SDK's systemClockOffset). */
  private clockOffsetMs = 0;

  constructor(private readonly options: S3HttpOptions) {
    const url = new URL(options.baseURL);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported base URL ${options.baseURL}`);
    this.protocol = url.protocol;
    // As the SDK does: virtual-host style only where the bucket can be a DNS label of that host.
    const vhost = options.vhost && canBeHostLabel(options.bucket, url);
    this.hostname = vhost ? `${options.bucket}.${url.hostname}` : url.hostname;
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    const requested = new URL(url);
    requested.hostname = this.hostname;
    this.proxy = options.proxyFor?.(requested);
    this.connections = new HttpConnections({
      protocol: url.protocol,
      host: this.hostname.replace(/^\[|\]$/g, ''),
      port,
      maxIdle: options.maxSockets,
      tls: options.tls,
      proxy: this.proxy,
      ...options.connections,
    });
    this.hostHeader = url.port === '' ? this.hostname : `${this.hostname}:${url.port}`;
    const base = url.pathname.replace(/\/+$/, '');
    this.bucketPath = vhost ? base : `${base}/${encodeKey(options.bucket)}`;
    this.signer =
      options.credentials === undefined
        ? undefined
        : new SignatureV4({
            service: 's3',
            region: options.region,
            credentials: options.credentials,
            sha256: NodeSha256,
            uriEscapePath: false, // S3 paths are encoded once, here
            applyChecksum: false,
          });
  }

  /** The bucket's URL path for a key ('' = the bucket itself). */
  private pathFor(key: string): string {
    return key === '' ? `${this.bucketPath}/` : `${this.bucketPath}/${encodeKey(key)}`;
  }

  /**
   * One attempt of a request on an object ('' = the bucket), or on a subresource of it (`delete`:
   * `?delete`, signed as the empty query value S3 canonicalizes it to). Resolves every answer,
   * whatever its status; rejects only when there is none (S3HttpError with status undefined) or
   * credentials fail.
   */
  async send(
    method: string,
    key: string,
    headers: Record<string, string>,
    body?: Buffer,
    maxBodyBytes = this.options.maxBodyBytes,
    subresource?: string,
    bodyInto?: Buffer,
  ): Promise<S3Response> {
    const path = subresource === undefined ? this.pathFor(key) : `${this.pathFor(key)}?${encodeURIComponent(subresource)}`;
    const request = {
      method,
      protocol: this.protocol,
      hostname: this.hostname,
      path: this.pathFor(key),
      query: subresource === undefined ? {} : { [subresource]: '' },
      headers: {
        ...headers,
        host: this.hostHeader,
        // A PUT's body is covered by its signed Content-MD5, which S3 checks: no second hash.
        'x-amz-content-sha256': body === undefined ? EMPTY_SHA256 : 'UNSIGNED-PAYLOAD',
        ...(body !== undefined ? { 'content-length': String(body.length) } : {}),
      },
    };
    const res = await this.attempt(method, path, request, body, maxBodyBytes, bodyInto);
    const offset = this.signer === undefined ? undefined : skewOf(res, this.clockOffsetMs);
    if (offset === undefined) return res;
    // Our clock is off by more than S3 accepts: sign with its time from now on, and again at once.
    this.clockOffsetMs = offset;
    this.options.onClockOffset?.(offset);
    return this.attempt(method, path, request, body, maxBodyBytes, bodyInto);
  }

  private async attempt(
    method: string,
    path: string,
    request: { headers: Record<string, string> } & Parameters<SignatureV4['sign']>[0],
    body: Buffer | undefined,
    maxBodyBytes: number,
    bodyInto: Buffer | undefined,
  ): Promise<S3Response> {
    const signingDate = this.clockOffsetMs === 0 ? undefined : new Date(Date.now() + this.clockOffsetMs);
    const signed = this.signer ? (await this.signer.sign(request, { signingDate })).headers : request.headers;
    const { onAttempt, latency } = this.options;
    if (onAttempt === undefined) {
      if (latency === undefined) return this.exchange(method, path, signed, body, maxBodyBytes, bodyInto);
      // The hot path: two clock readings and a bucket increment, nothing allocated.
      const started = performance.now();
      try {
        return await this.exchange(method, path, signed, body, maxBodyBytes, bodyInto);
      } finally {
        latency.observeSince(method, started);
      }
    }
    const started = Date.now();
    const startedPrecise = performance.now();
    const line = `${method} ${this.protocol}//${this.hostHeader}${path}`;
    try {
      const res = await this.exchange(method, path, signed, body, maxBodyBytes, bodyInto);
      latency?.observeSince(method, startedPrecise);
      onAttempt(line, String(res.status), Date.now() - started);
      return res;
    } catch (err) {
      latency?.observeSince(method, startedPrecise);
      onAttempt(line, (err as S3HttpError).code ?? (err as Error).name, Date.now() - started);
      throw err;
    }
  }

  private async exchange(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    maxBodyBytes: number,
    bodyInto: Buffer | undefined,
  ): Promise<S3Response> {
    const { timeoutMs } = this.options;
    try {
      return await this.connections.request({ method, path, headers, body, timeoutMs, maxBodyBytes, bodyInto });
    } catch (err) {
      if (err instanceof HttpTransportError) {
        // Through a forwarding proxy the socket is the proxy's: say so (tunnel errors already do).
        const via =
          this.proxy !== undefined && this.protocol === 'http:' && err.code !== 'EPROXY' ? `through the proxy ${this.proxy.display}: ` : '';
        // A proxy that refuses the tunnel with 407 will go on refusing: not worth retrying.
        throw new S3HttpError(via + err.message, err.proxyStatus === 407 ? 407 : undefined, err.code);
      }
      throw err;
    }
  }

  /** Closes the kept-alive sockets. */
  close(): void {
    this.connections.close();
  }

  /** The error for an answer the caller did not expect. */
  failure(res: S3Response): S3HttpError {
    const { code, message, region } = errorDetail(res.body);
    // S3 never answers 407: a proxy between us and it did.
    const proxyHint = res.status === 407 ? ': the proxy wants a user name and password (give them in the proxy URL)' : '';
    // A bucket in another region: S3 names it (a 301 without a body names it in a header only).
    const header = res.headers['x-amz-bucket-region'];
    const bucketRegion = (typeof header === 'string' ? header : undefined) ?? region;
    const wrongRegion =
      bucketRegion !== undefined && bucketRegion !== this.options.region && res.status >= 300 && res.status < 500
        ? bucketRegion
        : undefined;
    const regionHint =
      wrongRegion === undefined
        ? ''
        : `: the bucket is in region ${wrongRegion}, not ${this.options.region}: mount with --region=${wrongRegion}${this.regionalBaseURL(wrongRegion)}`;
    const text = `HTTP ${res.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}${proxyHint}${regionHint}`;
    return new S3HttpError(text, res.status, code, wrongRegion);
  }

  /** ", and --baseURL=..." when the base URL names another AWS region than the bucket's. */
  private regionalBaseURL(region: string): string {
    const m = /^s3[.-]([a-z0-9-]+)\.amazonaws\.com$/.exec(new URL(this.options.baseURL).hostname);
    return m !== null && m[1] !== region ? ` and --baseURL=https://s3.${region}.amazonaws.com/` : '';
  }
}
