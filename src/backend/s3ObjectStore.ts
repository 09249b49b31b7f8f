// Objects in an S3 bucket through @aws-sdk/client-s3: keep-alive sockets sized to the request
// concurrency, checksums only when required, raw bodies (Content-Encoding is s3backer's own tag).

import * as http from 'node:http';
import * as https from 'node:https';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type ObjectCannedACL,
  type S3ClientConfig,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { readFileSync } from 'node:fs';
import { fetchRoleCredentials } from './imdsCredentials';
import { StoreError, type ObjectHead, type ObjectStore, type PutOptions, type StoredObject } from './objectStore';
import { HttpStats } from './httpStats';
import { isRetryableStatus, withRetries, type AttemptFailure, type RetryPolicy } from './retry';
import type { CredentialSource } from './credentials';
import { Semaphore } from '../util/semaphore';
import type { Logger } from '../util/log';
import type { Config } from '../config/config';

/** The configuration's S3 settings (see Config for each), plus what the mount decides. */
export interface S3StoreOptions
  extends RetryPolicy,
    Pick<
      Config,
      | 'bucket' | 'prefix' | 'baseURL' | 'region' | 'accessType' | 'vhost' | 'storageClass' | 'sse' | 'sseKeyId'
      | 'insecure' | 'cacert' | 'maxUploadSpeed' | 'maxDownloadSpeed' | 'debugHttp' | 'timeoutMs'
    > {
  readonly credentials: CredentialSource;
  /** Requests in flight at once (and sockets kept open). */
  readonly concurrency: number;
}

// The SDK warns on every start under Node 20 about its releases after January 2027; our users
// cannot act on that at mount time (the README says which Node to use), so keep stderr clean.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

const NOT_FOUND = new Set(['NotFound', 'NoSuchKey']);

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
  return e.name === 'CredentialsProviderError' || /^instance metadata|no IAM role/.test(e.message ?? '');
}

function statusOf(err: unknown): number | undefined {
  const meta = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return meta?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404 && NOT_FOUND.has((err as Error).name);
}

function classify(err: unknown): AttemptFailure {
  const status = statusOf(err);
  const e = err as Error & { code?: string };
  let message = e.message || e.name || String(err);
  if (status !== undefined) message = `HTTP ${status}${e.name && e.name !== 'Unknown' ? ` ${e.name}` : ''}: ${message}`;
  else if (e.code) message = `${e.code}: ${message}`;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') message = `request timed out (${message})`;
  return { status, message, retryable: !(err instanceof S3ServiceException && status === 400) && isRetryableStatus(status) };
}

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly limiter: Semaphore;
  private readonly agents: Array<http.Agent>;

  constructor(
    private readonly options: S3StoreOptions,
    readonly stats: HttpStats,
    private readonly log: Logger,
  ) {
    this.description = `s3://${options.bucket}/${options.prefix}`;
    this.limiter = new Semaphore(options.concurrency);
    const agentOptions = { keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency };
    const httpAgent = new http.Agent(agentOptions);
    const httpsAgent = new https.Agent({
      ...agentOptions,
      rejectUnauthorized: !options.insecure,
      ...(options.cacert !== undefined ? { ca: readFileSync(options.cacert) } : {}),
    });
    this.agents = [httpAgent, httpsAgent];
    const creds = options.credentials;
    this.client = new S3Client({
      endpoint: options.baseURL,
      forcePathStyle: !options.vhost,
      region: options.region,
      maxAttempts: 1, // retries follow upstream's pauses, below
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        httpAgent,
        httpsAgent,
        connectionTimeout: options.timeoutMs,
        requestTimeout: options.timeoutMs,
      }),
      ...(creds.kind === 'static'
        ? { credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey } }
        : {}),
      ...(creds.kind === 'ec2Iam'
        ? { credentials: () => fetchRoleCredentials({ role: creds.role, imdsV2: creds.imdsV2, timeoutMs: options.timeoutMs }) }
        : {}),
      ...(creds.kind === 'defaultChain' ? { credentials: fromNodeProviderChain({ timeout: options.timeoutMs }) } : {}),
      // Public read-only disks: send requests unsigned.
      ...(creds.kind === 'anonymous'
        ? { credentials: { accessKeyId: '', secretAccessKey: '' }, signer: { sign: async (req: unknown) => req } }
        : {}),
    } as S3ClientConfig);
    if (options.debugHttp) this.logRequests();
  }

  /** --debug-http: the request line, status and time of every attempt; never headers or secrets. */
  private logRequests(): void {
    this.client.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { method?: string; protocol?: string; hostname?: string; port?: number; path?: string; query?: Record<string, unknown> };
        const query = new URLSearchParams(
          Object.entries(req.query ?? {}).map(([k, v]): [string, string] => [k, v === null || v === undefined ? '' : String(v)]),
        ).toString();
        const line = `${req.method} ${req.protocol}//${req.hostname}${req.port ? `:${req.port}` : ''}${req.path}${query ? `?${query}` : ''}`;
        const started = Date.now();
        try {
          const out = await next(args);
          this.log.http(`${line} -> ${(out.response as { statusCode?: number }).statusCode} (${Date.now() - started} ms)`);
          return out;
        } catch (err) {
          this.log.http(`${line} -> ${statusOf(err) ?? (err as Error).name} (${Date.now() - started} ms)`);
          throw err;
        }
      },
      { step: 'finalizeRequest', name: 's3backerDebugHttp', priority: 'low' },
    );
  }

  private request<T>(operation: string, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.limiter.run(() =>
      withRetries(operation, () => attempt(AbortSignal.timeout(this.options.timeoutMs)), classify, this.options, this.stats, this.log),
    );
  }

  async checkAccess(): Promise<void> {
    try {
      await this.request(`HEAD bucket ${this.options.bucket}`, (abortSignal) =>
        this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }), { abortSignal }),
      );
    } catch (err) {
      const failure = (err as { last?: AttemptFailure }).last;
      const status = failure?.status;
      const where = `${this.options.bucket} at ${this.options.baseURL}`;
      if (isCredentialsError((err as { cause?: unknown }).cause ?? err) || /credential/i.test((err as Error).message)) {
        throw new StoreError(`no usable S3 credentials for bucket ${where}: ${(err as Error).message}`);
      }
      if (status === 404) throw new StoreError(`bucket ${where} does not exist`, 404);
      if (status === 403 || status === 401) {
        throw new StoreError(`access to bucket ${where} was denied (HTTP ${status}): check the credentials`, status);
      }
      throw new StoreError(`cannot reach bucket ${where}: ${(err as Error).message}`, status);
    }
  }

  get(key: string): Promise<StoredObject | null> {
    return this.fetch(key, undefined) as Promise<StoredObject | null>;
  }

  getIfChanged(key: string, etag: string): Promise<StoredObject | null | 'unchanged'> {
    return this.fetch(key, etag);
  }

  private async fetch(key: string, ifNoneMatch: string | undefined): Promise<StoredObject | null | 'unchanged'> {
    const started = Date.now();
    this.stats.gets++;
    try {
      return await this.request(`GET ${key}`, async (abortSignal) => {
        try {
          const res = await this.client.send(
            new GetObjectCommand({ Bucket: this.options.bucket, Key: key, IfNoneMatch: ifNoneMatch && `"${ifNoneMatch}"` }),
            { abortSignal },
          );
          const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array();
          await pace(bytes.byteLength, this.options.maxDownloadSpeed, started);
          return {
            body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
            metadata: res.Metadata ?? {},
            contentEncoding: res.ContentEncoding || undefined,
            etag: res.ETag,
          };
        } catch (err) {
          if (isNotFound(err)) return null;
          if (ifNoneMatch !== undefined && statusOf(err) === 304) return 'unchanged';
          throw err;
        }
      });
    } finally {
      this.stats.getTimeMs += Date.now() - started;
    }
  }

  async head(key: string): Promise<ObjectHead | null> {
    return this.request(`HEAD ${key}`, async (abortSignal) => {
      try {
        const res = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: key }), { abortSignal });
        return { metadata: res.Metadata ?? {}, contentEncoding: res.ContentEncoding || undefined, etag: res.ETag };
      } catch (err) {
        // HEAD has no body, so the SDK names a 404 "NotFound" or just "Unknown".
        if (statusOf(err) === 404) return null;
        throw err;
      }
    });
  }

  async put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    const started = Date.now();
    this.stats.puts++;
    try {
      await this.request(`PUT ${key}`, (abortSignal) =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.options.bucket,
            Key: key,
            Body: body,
            ContentLength: body.length,
            ContentType: options.contentType,
            ContentMD5: options.contentMD5,
            ContentEncoding: options.contentEncoding,
            Metadata: options.metadata ? { ...options.metadata } : undefined,
            ACL: this.options.accessType as ObjectCannedACL,
            StorageClass: this.options.storageClass as StorageClass | undefined,
            ServerSideEncryption: this.options.sse as ServerSideEncryption | undefined,
            SSEKMSKeyId: this.options.sseKeyId,
          }),
          { abortSignal },
        ),
      );
      await pace(body.length, this.options.maxUploadSpeed, started);
    } finally {
      this.stats.putTimeMs += Date.now() - started;
    }
  }

  async delete(key: string): Promise<void> {
    const started = Date.now();
    this.stats.deletes++;
    try {
      await this.request(`DELETE ${key}`, async (abortSignal) => {
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: key }), { abortSignal });
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      });
    } finally {
      this.stats.deleteTimeMs += Date.now() - started;
    }
  }

  async list(prefix: string, onKeys: (keys: readonly string[]) => void): Promise<void> {
    let token: string | undefined;
    do {
      const page = await this.request(`LIST ${prefix}`, (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }),
          { abortSignal },
        ),
      );
      onKeys((page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [o.Key])));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  close(): void {
    this.client.destroy();
    for (const agent of this.agents) agent.destroy();
  }
}
