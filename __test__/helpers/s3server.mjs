// Test helper: a real S3 endpoint (s3rver 3.7.1) on loopback, in a child process.
//
//   const server = await startS3Server({ buckets: ['test'] });
//   ... server.endpoint, server.port, server.dir, server.accessKeyId, ...
//   await server.stop();
//
// s3rver runs in its own process (never in the test process) under
// `node --openssl-legacy-provider`: truncated ListObjectsV2 pages fail with HTTP 500 on
// Node >= 17 without it. Its store is a fresh mkdtemp directory, removed by stop().
// The child exits on its own when the IPC channel closes or this process disappears.

import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

// The SDK's Node 20 deprecation notice would clutter every test's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const here = dirname(fileURLToPath(import.meta.url));
const RUNNER = join(here, 's3rver-runner.cjs');
const require = createRequire(import.meta.url);

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * Start s3rver on 127.0.0.1 (port chosen by the kernel) with the given buckets.
 * @param {{ buckets?: string[], startTimeoutMs?: number }} [opts]
 */
export async function startS3Server({ buckets = ['test'], startTimeoutMs = START_TIMEOUT_MS } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 's3rver-'));
  const config = { dir, port: 0, address: '127.0.0.1', buckets, ppid: process.pid };
  const child = fork(RUNNER, [JSON.stringify(config)], {
    execArgv: ['--openssl-legacy-provider'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: childEnv(),
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });

  const exited = new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  let port;
  try {
    port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${startTimeoutMs} ms\n${stderr}`)), startTimeoutMs);
      child.on('message', (msg) => {
        if (msg && msg.type === 'listening') {
          clearTimeout(timer);
          resolve(msg.port);
        } else if (msg && msg.type === 'error') {
          clearTimeout(timer);
          reject(new Error(`s3rver failed to start: ${msg.message}`));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited early (code ${code}, signal ${signal})\n${stderr}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await within(exited, STOP_TIMEOUT_MS);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // Do not keep the test process alive just because the server runs.
  child.unref();
  if (child.channel) child.channel.unref();
  child.stderr.unref?.();

  let client;
  let stopped = false;
  const server = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    dir,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    region: 'us-east-1',
    buckets: [...buckets],
    child,
    /** stderr collected from the child (for diagnostics). */
    get stderr() {
      return stderr;
    },
    /** A shared S3Client for this server (created on first use, destroyed by stop()). */
    client() {
      if (!client) client = makeClient(server);
      return client;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (client) {
        client.destroy();
        client = undefined;
      }
      if (child.exitCode === null && child.signalCode === null) {
        // Keep the event loop alive until the child is really gone.
        child.ref();
        child.kill('SIGTERM');
        if (!(await within(exited, STOP_TIMEOUT_MS))) {
          child.kill('SIGKILL');
          await within(exited, STOP_TIMEOUT_MS);
        }
      }
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
  return server;
}

// The runner must not inherit test-runner or preload settings of this process.
function childEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  return env;
}

// Resolve true once `promise` settles, false after `ms` (the timer is cleared either way).
function within(promise, ms) {
  let timer;
  return Promise.race([
    promise.then(() => true),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A new S3Client for the server: path-style, no default CRC32 checksums / aws-chunked
 * uploads (s3rver would store the chunk framing inside the object).
 */
export function makeClient(server) {
  const { S3Client } = require('@aws-sdk/client-s3');
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 2,
  });
}

function s3() {
  return require('@aws-sdk/client-s3');
}

function clientOf(server) {
  return typeof server.client === 'function' ? server.client() : makeClient(server);
}

function isNotFound(err) {
  return err && (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.Code === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404);
}

/** All keys under `prefix` (ListObjectsV2, following continuation tokens), sorted. */
export async function listKeys(server, bucket, prefix = '') {
  const { ListObjectsV2Command } = s3();
  const client = clientOf(server);
  const keys = [];
  let ContinuationToken;
  for (let page = 0; page < 100_000; page++) {
    const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken }));
    for (const o of out.Contents || []) keys.push(o.Key);
    if (!out.IsTruncated) break;
    ContinuationToken = out.NextContinuationToken;
    if (!ContinuationToken) throw new Error('truncated listing without NextContinuationToken');
  }
  return keys.sort();
}

/** Collect the raw headers of the last HTTP response of a command (for Content-Encoding etc.). */
function rawHeaders(out) {
  return out?.$response?.headers;
}

function describe(out) {
  return {
    contentType: out.ContentType,
    contentEncoding: out.ContentEncoding,
    contentLength: out.ContentLength,
    etag: out.ETag,
    lastModified: out.LastModified,
    metadata: out.Metadata || {},
  };
}

/**
 * GET an object. Returns null on 404, else
 * { body: Buffer, metadata: {name: value} (x-amz-meta-* without the prefix, lower case),
 *   headers: { 'content-type', 'content-encoding', 'etag', ... } (raw response headers),
 *   contentType, contentEncoding, contentLength, etag, lastModified }.
 * The body is returned exactly as stored: Content-Encoding is NOT decoded.
 */
export async function getObject(server, bucket, key) {
  const { GetObjectCommand } = s3();
  const client = clientOf(server);
  const cmd = new GetObjectCommand({ Bucket: bucket, Key: key });
  const captured = captureHeaders(cmd);
  let out;
  try {
    out = await client.send(cmd);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  const body = Buffer.from(await out.Body.transformToByteArray());
  return { body, headers: captured.headers || rawHeaders(out) || {}, ...describe(out) };
}

/** HEAD an object. Returns null on 404, else the same shape as getObject without body. */
export async function headObject(server, bucket, key) {
  const { HeadObjectCommand } = s3();
  const client = clientOf(server);
  const cmd = new HeadObjectCommand({ Bucket: bucket, Key: key });
  const captured = captureHeaders(cmd);
  let out;
  try {
    out = await client.send(cmd);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  return { headers: captured.headers || {}, ...describe(out) };
}

/** PUT an object (body: Buffer|string). `metadata` keys without the x-amz-meta- prefix. */
export async function putObject(server, bucket, key, body, { metadata, contentType, contentEncoding } = {}) {
  const { PutObjectCommand } = s3();
  const client = clientOf(server);
  return client.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      Metadata: metadata,
      ContentType: contentType,
      ContentEncoding: contentEncoding,
    }),
  );
}

/** DELETE an object (missing is fine). */
export async function deleteObject(server, bucket, key) {
  const { DeleteObjectCommand } = s3();
  return clientOf(server).send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

// Record the raw HTTP response headers of one command via a deserialize middleware.
function captureHeaders(cmd) {
  const captured = { headers: undefined };
  cmd.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const h = result?.response?.headers;
      if (h) {
        captured.headers = {};
        for (const [k, v] of Object.entries(h)) captured.headers[k.toLowerCase()] = v;
      }
      return result;
    },
    { step: 'deserialize', name: 'captureRawHeaders', priority: 'low' },
  );
  return captured;
}

/**
 * Registers before/after hooks for a test file: s3rver with bucket "disk" and a work directory
 * (workdir from ours.mjs). The returned object's server and w are set once the before hook ran.
 */
export function useS3Server(name, { before, after, workdir }) {
  const env = {};
  before(async () => {
    env.server = await startS3Server({ buckets: ['disk'] });
    env.w = await workdir(name);
  });
  after(async () => {
    await env.w?.cleanup();
    await env.server?.stop();
  });
  return env;
}
