// Objects in an S3 bucket. Block reads and writes (GET, PUT, HEAD, DELETE, and multi-object
// deletes for TRIM and --erase) go through S3Http: SigV4-signed node:http requests on keep-alive
// sockets sized to the request concurrency. Listing (rare, XML pages) goes through
// @aws-sdk/client-s3, loaded when first needed.

import type * as http from 'node:http';
import type * as https from 'node:https';
import { createHash } from 'node:crypto';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { fetchRoleCredentials } from './imdsCredentials';
import {
  ConditionFailedError,
  ConditionUnsupportedError,
  MAX_KEYS_PER_DELETE,
  type KeysCallback,
  type ListOptions,
  type ObjectHead,
  type ObjectStore,
  type PutOptions,
  type PutResult,
  type StoredObject,
  type WriteCondition,
} from '../objectStore';
import { HttpStats } from '../httpStats';
import { proxyFor } from './proxy';
import type { SdkAgentOptions } from './sdkAgent';
import { tlsTrust } from './trust';
import { isRetryableStatus, withRetries } from '../retry';
import type { RetryPolicy } from '../../util/retryPauses';
import { CredentialsError, memoizeCredentials, S3Http, S3HttpError, type CredentialProvider, type S3Response } from './s3Http';
import type { CredentialSource } from './credentials';
import { Semaphore } from '../../util/semaphore';
import { allSettled, chunksOf } from '../../util/batches';
import { multiDeleteBody, parseDeleteResult } from './multiDelete';
import type { Logger } from '../../util/log';
import { type AttemptFailure, StoreError } from '../../errors';

/** The S3 client's settings, as the flags give them (the configuration holds them as they are). */
export interface S3Settings {
  readonly bucket: string;
  readonly prefix: string;
  /** Listers side by side over disjoint key ranges (--listBlocks at mount, and --erase). */
  readonly listBlocksThreads: number;
  /** Always ends in "/"; with vhost the bucket goes in the host name. */
  readonly baseURL: string;
  readonly vhost: boolean;
  readonly region: string;
  readonly accessType: string;
  readonly storageClass: string | undefined;
  readonly sse: string | undefined;
  readonly sseKeyId: string | undefined;
  readonly insecure: boolean;
  readonly cacert: string | undefined;
  /** Bits per second of one block transfer; undefined = unlimited. */
  readonly maxUploadSpeed: number | undefined;
  readonly maxDownloadSpeed: number | undefined;
  readonly debugHttp: boolean;
  /** --ipTOS: the IP type of service of S3 connections. */
  readonly ipTos: number | undefined;
  /** --noCurlCache: no kept-alive connections. */
  readonly noCurlCache: boolean;
  readonly timeoutMs: number;
}

/** The S3 settings plus what the mount decides. */
export interface S3StoreOptions extends RetryPolicy, S3Settings {
  readonly credentials: CredentialSource;
  /** Requests in flight at once (and sockets kept open). */
  readonly concurrency: number;
}

// The SDK warns on every start under a Node its next releases drop (20, then 22); our users
// cannot act on that at mount time (the README says which Node to use), so keep stderr clean.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** No block object comes near this; a longer answer is refused rather than buffered. */
const MAX_OBJECT_BYTES = 256 * 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Paces one transfer so its average rate stays under the limit (upstream caps each request). */
async function pace(bytes: number, bitsPerSecond: number | undefined, started: number): Promise<void> {
  if (bitsPerSecond === undefined) return;
  const minimumMs = ((bytes * 8) / bitsPerSecond) * 1000;
  const elapsed = Date.now() - started;
  if (elapsed < minimumMs) await sleep(minimumMs - elapsed);
}

function isCredentialsError(err: unknown): boolean {
  const e = err as Error;
  return e instanceof CredentialsError || e.name === 'CredentialsProviderError' || /^instance metadata|no IAM role/.test(e.message ?? '');
}

/** Certificate errors that mean the server's chain ends in a CA nobody told us to trust. */
const UNTRUSTED_CA =
  /\b(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_UNTRUSTED)\b/;

function statusOf(err: unknown): number | undefined {
  if (err instanceof S3HttpError) return err.status;
  const meta = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return meta?.httpStatusCode;
}

function classify(err: unknown): AttemptFailure {
  const status = statusOf(err);
  const e = err as Error & { code?: string };
  // The SDK's messages go on with hint lines ("Deserialization error: to see the raw response..."):
  // the first line says what failed, and errors are reported on one line.
  let message = (e.message || e.name || String(err)).split('\n')[0]!.trim();
  if (status === undefined && e.code && !(err instanceof S3HttpError)) message = `${e.code}: ${message}`;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') message = `request timed out (${message})`;
  // S3 answers a stalled upload with 400 RequestTimeout: worth another try, unlike other 400s.
  // A bucket in another region stays there: say which at once rather than retry for 30 s.
  const wrongRegion = err instanceof S3HttpError && err.bucketRegion !== undefined;
  const retryable = !wrongRegion && (isRetryableStatus(status) || (err instanceof S3HttpError && err.code === 'RequestTimeout'));
  const code = status !== undefined ? undefined : e.name === 'TimeoutError' ? 'ETIMEDOUT' : e.code;
  return { status, code, message, retryable };
}

/** The x-amz-meta-* headers of an answer, names without the prefix. */
function metadataOf(res: S3Response): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice(11)] = value;
  }
  return metadata;
}

function headOf(res: S3Response): ObjectHead {
  const encoding = res.headers['content-encoding'];
  const etag = res.headers['etag'];
  return { metadata: metadataOf(res), contentEncoding: encoding || undefined, etag: typeof etag === 'string' ? etag : undefined };
}

/** Answers to a conditional write that are not retried: they say how the condition went. */
const CONDITION_ANSWERS = [400, 404, 412, 501];

function conditionHeaders(condition: WriteCondition | undefined): Record<string, string> {
  if (condition === undefined) return {};
  return 'ifMatch' in condition ? { 'if-match': condition.ifMatch } : { 'if-none-match': condition.ifNoneMatch };
}

/**
 * Turns the answers about a condition into errors. 404 means a failed If-Match only when the key
 * is missing (NoSuchKey), not the bucket. 501 (NotImplemented) and any other 400 come from stores
 * that do not know the headers: the caller decides whether to write without them.
 */
function checkConditionAnswer(http: S3Http, key: string, res: S3Response, ifMatch: boolean): void {
  if (res.status < 300) return;
  const failure = http.failure(res);
  if (res.status === 412) throw new ConditionFailedError(key, 412);
  if (res.status === 404) {
    if (ifMatch && (failure.code === undefined || failure.code === 'NoSuchKey')) throw new ConditionFailedError(key, 404);
    throw new StoreError(`${key}: ${failure.message}`, 404);
  }
  throw new ConditionUnsupportedError(key, failure.message, res.status);
}

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  readonly listsInParallel = true;
  private readonly http: S3Http;
  private readonly limiter: Semaphore;
  /** The SDK's sockets, made with its client: node:http and node:https load only for a listing. */
  private agent: http.Agent | undefined;
  private readonly agentOptions: SdkAgentOptions;
  private readonly credentialProvider: CredentialProvider | undefined;
  private sdkClient: S3Client | undefined;
  /** Set once the endpoint answered a multi-object delete with 501 NotImplemented: single DELETEs from then on. */
  private noMultiDelete = false;

  constructor(
    private readonly options: S3StoreOptions,
    readonly stats: HttpStats,
    private readonly log: Logger,
  ) {
    this.description = `s3://${options.bucket}/${options.prefix}`;
    this.limiter = new Semaphore(options.concurrency);
    // Built only for https: reading the system's CA bundle has no point for http.
    const tls = options.baseURL.startsWith('https:') ? tlsTrust(options) : { rejectUnauthorized: !options.insecure };
    this.credentialProvider = credentialProviderFor(options.credentials, options.timeoutMs);
    this.http = new S3Http({
      baseURL: options.baseURL,
      bucket: options.bucket,
      vhost: options.vhost,
      region: options.region,
      credentials: this.credentialProvider,
      timeoutMs: options.timeoutMs,
      maxSockets: options.concurrency,
      tls,
      maxBodyBytes: MAX_OBJECT_BYTES,
      latency: stats.latency,
      // --debug-http: the request line, status and time of every attempt; never headers or secrets.
      onAttempt: options.debugHttp ? (line, outcome, ms) => this.log.http(`${line} -> ${outcome} (${ms} ms)`) : undefined,
      proxyFor: (url) => proxyFor(url),
      connections: {
        counters: stats.connections,
        keepAlive: !options.noCurlCache,
        typeOfService: options.ipTos,
        warn: (message) => this.log.warn(message),
      },
      onClockOffset: (offsetMs) =>
        this.log.warn(
          `S3 says this machine's clock is ${(Math.abs(offsetMs) / 1000).toFixed(0)} s ${offsetMs > 0 ? 'behind' : 'ahead of'} its own: requests are signed with S3's time from now on (set the clock right: NTP)`,
        ),
    });
    const { proxy } = this.http;
    if (proxy !== undefined) this.log.info(`requests to S3 go through the proxy ${proxy.display} (from ${proxy.variable})`);
    // Only the SDK's listing uses the agent; block requests have their own sockets (S3Http).
    this.agentOptions = {
      protocol: options.baseURL.startsWith('https:') ? 'https:' : 'http:',
      tls,
      proxy,
      timeoutMs: options.timeoutMs,
      typeOfService: options.ipTos,
      warn: (message) => this.log.warn(message),
      // One socket per lister, so parallel listers never wait for each other's sockets.
      maxSockets: options.listBlocksThreads,
    };
  }

  private request<T>(operation: string, attempt: () => Promise<T>): Promise<T> {
    return this.limiter.run(() => withRetries(operation, attempt, classify, this.options, this.stats, this.log));
  }

  /** One attempt; answers other than `expected` become errors (and so retries, where that helps). */
  private async send(
    method: string,
    key: string,
    expected: readonly number[],
    headers: Record<string, string> = {},
    body?: Buffer,
    maxBodyBytes?: number,
    bodyInto?: Buffer,
  ): Promise<S3Response> {
    const res = await this.http.send(method, key, headers, body, maxBodyBytes, undefined, bodyInto);
    if (!expected.includes(res.status)) throw this.http.failure(res);
    return res;
  }

  async checkAccess(): Promise<void> {
    try {
      await this.request(`HEAD bucket ${this.options.bucket}`, () => this.send('HEAD', '', [200]));
    } catch (err) {
      const failure = (err as { last?: AttemptFailure }).last;
      const status = failure?.status;
      const proxy = this.http.proxy;
      // Transport errors name the proxy themselves; an answer may have come from it, not from S3.
      const where = `${this.options.bucket} at ${this.options.baseURL}${proxy && status !== undefined ? ` (through the proxy ${proxy.display})` : ''}`;
      const cause = (err as { cause?: unknown }).cause ?? err;
      if (isCredentialsError(cause) || (status === undefined && /credential|instance metadata|IAM role/i.test((err as Error).message))) {
        throw new StoreError(`no usable S3 credentials for bucket ${where}: ${(err as Error).message}`);
      }
      if (status === 404) throw new StoreError(`bucket ${where} does not exist`, 404);
      if (status === 403 || status === 401) {
        throw new StoreError(`access to bucket ${where} was denied (HTTP ${status}): check the credentials`, status);
      }
      const message = (err as Error).message;
      // Node trusts its own bundle of CAs, not the system's store (as libcurl does): say what to do.
      const hint = UNTRUSTED_CA.test(message) ? ' (a private CA? trust it with --cacert=FILE, or skip the check with --insecure)' : '';
      throw new StoreError(`cannot reach bucket ${where}: ${message}${hint}`, status);
    }
  }

  get(key: string, maxBytes?: number, into?: Buffer): Promise<StoredObject | null> {
    return this.fetch(key, undefined, maxBytes, into) as Promise<StoredObject | null>;
  }

  getIfChanged(key: string, etag: string, maxBytes?: number): Promise<StoredObject | null | 'unchanged'> {
    return this.fetch(key, etag, maxBytes);
  }

  private async fetch(
    key: string,
    ifNoneMatch: string | undefined,
    maxBytes: number | undefined,
    into?: Buffer,
  ): Promise<StoredObject | null | 'unchanged'> {
    const started = Date.now();
    this.stats.gets++;
    try {
      return await this.request(`GET ${key}`, async () => {
        const headers: Record<string, string> = ifNoneMatch === undefined ? {} : { 'if-none-match': `"${ifNoneMatch}"` };
        const res = await this.send('GET', key, [200, 304, 404], headers, undefined, maxBytes, into);
        if (res.status === 404) {
          // Only a missing key reads as zeros; a missing bucket (NoSuchBucket) is an error.
          const failure = this.http.failure(res);
          if (failure.code === undefined || failure.code === 'NoSuchKey') return null;
          throw failure;
        }
        if (res.status === 304) {
          if (ifNoneMatch === undefined) throw this.http.failure(res);
          return 'unchanged';
        }
        if (this.options.maxDownloadSpeed !== undefined) await pace(res.body.length, this.options.maxDownloadSpeed, started);
        return { ...headOf(res), body: res.body };
      });
    } finally {
      this.stats.getTimeMs += Date.now() - started;
    }
  }

  async head(key: string): Promise<ObjectHead | null> {
    return this.request(`HEAD ${key}`, async () => {
      // HEAD has no body to tell a missing key from a missing bucket: 404 is "no such object".
      const res = await this.send('HEAD', key, [200, 404]);
      return res.status === 404 ? null : headOf(res);
    });
  }

  async put(key: string, body: Buffer, options: PutOptions): Promise<PutResult> {
    const started = Date.now();
    this.stats.puts++;
    const o = this.options;
    const headers: Record<string, string> = { 'content-type': options.contentType, ...conditionHeaders(options.condition) };
    if (options.contentMD5 !== undefined) headers['content-md5'] = options.contentMD5;
    if (options.contentEncoding !== undefined) headers['content-encoding'] = options.contentEncoding;
    for (const [name, value] of Object.entries(options.metadata ?? {})) headers[`x-amz-meta-${name.toLowerCase()}`] = value;
    if (o.accessType) headers['x-amz-acl'] = o.accessType;
    if (o.storageClass) headers['x-amz-storage-class'] = o.storageClass;
    if (o.sse) headers['x-amz-server-side-encryption'] = o.sse;
    if (o.sseKeyId) headers['x-amz-server-side-encryption-aws-kms-key-id'] = o.sseKeyId;
    try {
      const expected = options.condition === undefined ? [200] : [200, ...CONDITION_ANSWERS];
      const res = await this.request(`PUT ${key}`, () => this.sendConditional('PUT', key, expected, headers, body));
      if (options.condition !== undefined) checkConditionAnswer(this.http, key, res, 'ifMatch' in options.condition);
      await pace(body.length, o.maxUploadSpeed, started);
      const etag = res.headers['etag'];
      return { etag: typeof etag === 'string' ? etag : undefined };
    } finally {
      this.stats.putTimeMs += Date.now() - started;
    }
  }

  async delete(key: string, condition?: { readonly ifMatch: string }): Promise<void> {
    const started = Date.now();
    this.stats.deletes++;
    try {
      const expected = condition === undefined ? [200, 204, 404] : [200, 204, 404, ...CONDITION_ANSWERS];
      const res = await this.request(`DELETE ${key}`, () => this.sendConditional('DELETE', key, expected, conditionHeaders(condition)));
      // A missing object is deleted already, whatever the condition said (a retry may find our own delete done).
      if (condition !== undefined && res.status !== 404) checkConditionAnswer(this.http, key, res, false);
    } finally {
      this.stats.deleteTimeMs += Date.now() - started;
    }
  }

  /** POST ?delete in requests of up to 1000 keys, side by side through the limiter. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    await allSettled(chunksOf(keys, MAX_KEYS_PER_DELETE).map((chunk) => this.deleteChunk(chunk)));
  }

  /** One multi-object delete, as upstream sends it; the endpoint's per-key errors fail it. */
  private async deleteChunk(keys: readonly string[]): Promise<void> {
    if (this.noMultiDelete) return this.deleteEach(keys);
    const body = multiDeleteBody(keys);
    const headers = { 'content-md5': createHash('md5').update(body).digest('base64'), 'content-type': 'application/xml' };
    this.stats.multiDeletes++;
    const answer = await this.request(`POST ?delete (${keys.length} keys)`, async () => {
      const res = await this.http.send('POST', '', headers, body, undefined, 'delete');
      if (res.status === 200) return res;
      const failure = this.http.failure(res);
      if (res.status === 501 || failure.code === 'NotImplemented') return 'unsupported';
      throw failure;
    });
    if (answer === 'unsupported') {
      if (!this.noMultiDelete)
        this.log.warn(`${this.options.baseURL} does not implement multi-object delete: deleting one object per request`);
      this.noMultiDelete = true;
      return this.deleteEach(keys);
    }
    const result = parseDeleteResult(answer.body);
    if (result === undefined) throw new StoreError(`multi-object delete of ${keys.length} keys: the answer is not a DeleteResult`, 200);
    this.stats.multiDeletedKeys += keys.length - result.errors.length;
    if (result.errors.length > 0) {
      const [first] = result.errors;
      const more = result.errors.length > 1 ? ` (and ${result.errors.length - 1} more)` : '';
      throw new StoreError(
        `multi-object delete: ${first!.key} not deleted: ${first!.code}${first!.message ? `: ${first!.message}` : ''}${more}`,
      );
    }
  }

  private async deleteEach(keys: readonly string[]): Promise<void> {
    await allSettled(keys.map((key) => this.delete(key)));
  }

  /** send(), except that S3's "upload stalled" 400 stays an error to retry rather than an answer about the condition. */
  private async sendConditional(
    method: string,
    key: string,
    expected: readonly number[],
    headers: Record<string, string>,
    body?: Buffer,
  ): Promise<S3Response> {
    const res = await this.send(method, key, expected, headers, body);
    if (res.status === 400 && this.http.failure(res).code === 'RequestTimeout') throw this.http.failure(res);
    return res;
  }

  /**
   * Listing requests do not queue with block requests for the limiter: their number is bounded
   * by the listers (one request each), and a slow listing must not hold up reads of the mount.
   */
  async list(prefix: string, onKeys: KeysCallback, options: ListOptions = {}): Promise<void> {
    const { client, ListObjectsV2Command } = await this.sdk();
    const { signal, startAfter } = options;
    let token: string | undefined;
    do {
      const input = {
        Bucket: this.options.bucket,
        Prefix: prefix,
        // S3 ignores StartAfter once there is a continuation token: send it on the first page only.
        ...(token === undefined ? { StartAfter: startAfter } : { ContinuationToken: token }),
        MaxKeys: 1000,
      };
      const operation = `LIST ${prefix}${startAfter === undefined ? '' : ` after ${startAfter}`}`;
      const page = await withRetries(
        operation,
        async () => {
          const started = performance.now();
          try {
            const timeout = AbortSignal.timeout(this.options.timeoutMs);
            const abortSignal = signal ? AbortSignal.any([timeout, signal]) : timeout;
            const answer = await client.send(new ListObjectsV2Command(input), { abortSignal });
            S3ObjectStore.checkListing(answer);
            return answer;
          } finally {
            this.stats.latency.observeSince('LIST', started);
          }
        },
        classify,
        this.options,
        this.stats,
        this.log,
        signal,
      );
      if (onKeys((page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [o.Key]))) === false) return;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * The SDK reads any well-formed XML (an HTML page, another document) as an empty page, and
   * a truncated page without a token as the last one: either would make --listBlocks take every
   * block it did not see for zeros. S3 always says IsTruncated, and a token when it is true.
   */
  private static checkListing(page: { IsTruncated?: boolean | undefined; NextContinuationToken?: string | undefined }): void {
    const fail = (why: string): S3HttpError => new S3HttpError(`the answer is not a bucket listing (${why})`, 200, 'MalformedListing');
    if (page.IsTruncated === undefined) throw fail('no IsTruncated');
    if (page.IsTruncated && !page.NextContinuationToken) throw fail('truncated, but no NextContinuationToken');
  }

  /** The SDK client, for listing: same endpoint, sockets and credentials as the hot path. */
  private async sdk(): Promise<{ client: S3Client; ListObjectsV2Command: typeof import('@aws-sdk/client-s3').ListObjectsV2Command }> {
    const sdk = await import('@aws-sdk/client-s3');
    const { NodeHttpHandler } = await import('@smithy/node-http-handler');
    const { createSdkAgent } = await import('./sdkAgent');
    const provider = this.credentialProvider;
    const agent = (this.agent ??= createSdkAgent(this.agentOptions));
    this.sdkClient ??= new sdk.S3Client({
      endpoint: this.options.baseURL,
      forcePathStyle: !this.options.vhost,
      region: this.options.region,
      maxAttempts: 1, // retries follow upstream's pauses
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({ httpAgent: agent, httpsAgent: agent as https.Agent }),
      ...(provider
        ? { credentials: provider }
        : { credentials: { accessKeyId: '', secretAccessKey: '' }, signer: { sign: (req: unknown) => Promise.resolve(req) } }),
    } as S3ClientConfig);
    return { client: this.sdkClient, ListObjectsV2Command: sdk.ListObjectsV2Command };
  }

  close(): void {
    this.sdkClient?.destroy();
    this.agent?.destroy();
    this.http.close();
  }
}

/** The SDK's provider for each credential source; undefined = anonymous (unsigned requests). */
function credentialProviderFor(source: CredentialSource, timeoutMs: number): CredentialProvider | undefined {
  switch (source.kind) {
    case 'anonymous':
      return undefined;
    case 'static': {
      const creds = { accessKeyId: source.accessKeyId, secretAccessKey: source.secretAccessKey };
      return () => Promise.resolve(creds);
    }
    case 'ec2Iam':
      return memoizeCredentials(() => fetchRoleCredentials({ role: source.role, imdsV2: source.imdsV2, timeoutMs }));
    case 'defaultChain':
      // Loaded only when used: the provider chain is a large module.
      return memoizeCredentials(async () => {
        const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
        return fromNodeProviderChain({ timeout: timeoutMs })();
      });
  }
}
