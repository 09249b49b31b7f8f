// Settings the layers take, as the config would give them, for tests and benchmarks that build a
// layer by hand: one place to add a field when the config grows one.

/**
 * A block cache's settings (BlockCacheSettings): 8 blocks, a 50 ms write delay, 4 uploads at
 * once, no read-ahead.
 * @template {object} T
 * @param {T} extra
 * @returns {import('../../dist/layers/blockCache.js').BlockCacheSettings & T}
 */
export function cacheSettings(extra = /** @type {T} */ ({})) {
  const settings = {
    size: 8,
    writeDelayMs: 50,
    threads: 4,
    timeoutMs: 0,
    maxDirty: 0,
    sync: false,
    numProtected: 0,
    readAhead: 0,
    readAheadTrigger: 2,
  };
  return Object.assign(settings, extra);
}

/**
 * An S3 object store's options (S3StoreOptions) for `baseURL`, path-style, plain defaults, static
 * credentials; `extra` sets the bucket, the retries, the concurrency and the rest.
 * @param {string} baseURL
 * @param {Partial<import('../../dist/backend/s3/s3ObjectStore.js').S3StoreOptions> & { accessKeyId?: string, secretAccessKey?: string }} [extra]
 * @returns {import('../../dist/backend/s3/s3ObjectStore.js').S3StoreOptions}
 */
export const s3StoreOptions = (baseURL, { accessKeyId = 'AKID', secretAccessKey = 'secret', ...extra } = {}) => ({
  bucket: 'disk',
  prefix: '',
  baseURL,
  region: 'us-east-1',
  accessType: 'private',
  vhost: false,
  storageClass: undefined,
  sse: undefined,
  sseKeyId: undefined,
  insecure: false,
  cacert: undefined,
  maxUploadSpeed: undefined,
  maxDownloadSpeed: undefined,
  debugHttp: false,
  ipTos: undefined,
  noCurlCache: false,
  // undefined: the listing agent's default socket limit.
  listBlocksThreads: undefined,
  timeoutMs: 10_000,
  initialRetryPauseMs: 20,
  maxRetryPauseMs: 100,
  concurrency: 8,
  credentials: { kind: 'static', accessKeyId, secretAccessKey, from: 'test' },
  ...extra,
});
