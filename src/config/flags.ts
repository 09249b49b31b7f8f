// Upstream s3backer's command-line flags: names, value kinds, defaults and help text.
// One table drives --help, parsing, `-o name=value` and the "not supported yet" refusals.

export type FlagKind = 'boolean' | 'value' | 'optionalValue';

export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly valueName?: string;
  readonly help: string;
  /** The value taken when the flag is not given, written as on the command line: the configuration reads it from here. */
  readonly default?: string;
  /** What --help adds about the default: a rule the configuration applies (auto-detection, a derived value). */
  readonly defaultNote?: string;
  /** False for upstream flags this version does not implement yet: they are refused, never ignored. */
  readonly supported: boolean;
  /** For an unsupported flag: the one line that says why and what to do instead. */
  readonly refusal?: string;
}

const NBD_REFUSAL =
  'NBD mode is not available in this version of s3backer (upstream builds it with nbdkit); FUSE mode is: mount without --nbd on a directory, then loop-mount its file';

const f = (name: string, kind: FlagKind, help: string, extra: Partial<FlagSpec> = {}): FlagSpec => ({
  name,
  kind,
  help,
  supported: true,
  ...extra,
});

export const FLAGS: readonly FlagSpec[] = [
  f('accessFile', 'value', "file of 'accessID:accessKey' lines", { valueName: 'FILE', defaultNote: '$HOME/.s3backer_passwd' }),
  f('accessId', 'value', 'S3 access key ID (empty: unsigned requests)', { valueName: 'ID' }),
  f('accessKey', 'value', 'S3 secret access key', { valueName: 'KEY' }),
  f('accessType', 'value', 'S3 ACL for new objects: private, public-read, public-read-write, authenticated-read', {
    valueName: 'TYPE',
    default: 'private',
  }),
  f('accessKeyEnv', 'value', 'read the secret access key from this environment variable', { valueName: 'VARNAME' }),
  f('accessEC2IAM', 'optionalValue', 'credentials of the EC2 instance role (ROLE, or the one attached)', { valueName: 'ROLE' }),
  f('accessEC2IAM-IMDSv2', 'boolean', 'fetch the EC2 role credentials with IMDSv2 session tokens'),
  f('authVersion', 'value', 'S3 authentication style (only aws4 is supported)', { valueName: 'TYPE', default: 'aws4' }),
  f('baseURL', 'value', 'base URL for all requests, ending in /', {
    valueName: 'URL',
    defaultNote: 'https://s3.amazonaws.com/, or https://s3.REGION.amazonaws.com/',
  }),
  f('blockCacheFile', 'value', 'keep the block cache in FILE, surviving restarts and crashes', { valueName: 'FILE' }),
  f('blockCacheFileAdvise', 'boolean', 'drop cache-file pages from memory after reading them (posix_fadvise DONTNEED)'),
  f('blockCacheMaxDirty', 'value', 'writers wait while this many blocks are dirty (0 = the cache size)', {
    valueName: 'NUM',
    default: '0',
  }),
  f('blockCacheNoVerify', 'boolean', 'reuse clean blocks of the cache file without checking them against S3'),
  f('blockCacheRecoverDirtyBlocks', 'boolean', 'upload the dirty blocks a crashed mount left in the cache file'),
  f('blockCacheSize', 'value', 'block cache size in blocks (0 = no cache)', { valueName: 'NUM', default: '1000' }),
  f('blockCacheSync', 'boolean', 'a write returns only once the block is uploaded'),
  f('blockCacheThreads', 'value', 'uploads in flight at most; 64 unless a flush waits on a slow S3', { valueName: 'NUM', default: '96' }),
  f('blockCacheTimeout', 'value', 'evict clean blocks idle this long (0 = never)', { valueName: 'MILLIS', default: '0' }),
  f('blockCacheWriteDelay', 'value', 'upload dirty blocks after at most this long', { valueName: 'MILLIS', default: '250' }),
  f('blockCacheNumProtected', 'value', 'keep this many low-numbered blocks (metadata) longest', { valueName: 'NUM', default: '0' }),
  f('blockHashPrefix', 'boolean', 'prepend a hash to block names for even distribution'),
  f('blockSize', 'value', "block size (suffixes 'k', 'm', 'g')", { valueName: 'SIZE', default: '4k', defaultNote: 'or auto-detected' }),
  f('cacert', 'value', 'SSL certificate authority file', { valueName: 'FILE' }),
  f('compress', 'optionalValue', 'compress blocks: deflate (zlib format), zstd, or a deflate LEVEL 1-9', { valueName: 'ALGO|LEVEL' }),
  f('compress-level', 'value', 'compression level (deflate 1-9, zstd 1-22)', { valueName: 'LEVEL' }),
  f('configFile', 'value', 'read more arguments from FILE, one per line (also -F FILE)', { valueName: 'FILE' }),
  f('debug', 'boolean', 'log debug messages'),
  f('debug-http', 'boolean', 'log each HTTP request line, status and time (never headers or secrets)'),
  f('defaultContentEncoding', 'value', 'Content-Encoding assumed for stored blocks that carry none', { valueName: 'STRING' }),
  f('directIO', 'boolean', 'disable kernel caching of the backed file'),
  f('encrypt', 'optionalValue', 'encrypt and authenticate blocks, AES-128-CBC by default (implies --compress)', { valueName: 'CIPHER' }),
  f('erase', 'boolean', 'erase every block and the mounted flag, then exit (asks first unless --force)'),
  f('fileMode', 'value', 'permissions of the backed file', { valueName: 'MODE', defaultNote: '0600 (0400 with --readOnly)' }),
  f('filename', 'value', 'name of the backed file', { valueName: 'NAME', default: 'file' }),
  f('force', 'boolean', 'ignore a set mounted flag and differing auto-detected sizes'),
  f('initialRetryPause', 'value', 'first pause before retrying a failed request', { valueName: 'MILLIS', default: '200' }),
  f('insecure', 'boolean', "don't verify the SSL server identity"),
  f('http11', 'boolean', "accepted for upstream's command lines: requests are always HTTP/1.1 here (never HTTP/2)"),
  f('ipTOS', 'value', 'IP type of service of S3 connections: 0-255, or lowdelay, throughput, reliability, lowcost', { valueName: 'VALUE' }),
  f('keyLength', 'value', 'override the derived key length in bytes', { valueName: 'NUM' }),
  f('listBlocks', 'boolean', 'learn which blocks exist by listing the bucket, in the background while mounted'),
  f('listBlocksThreads', 'value', 'listers side by side over disjoint key ranges (--listBlocks, --erase)', {
    valueName: 'NUM',
    default: '16',
  }),
  f('logFile', 'value', 'append log lines, each with its time, to FILE instead of syslog (background) or stderr (-f)', {
    valueName: 'FILE',
  }),
  f('maxDownloadSpeed', 'value', 'max download bandwidth of one block read', { valueName: 'BITSPERSEC' }),
  f('maxRetryPause', 'value', 'max total pause while retrying one request', { valueName: 'MILLIS', default: '30000' }),
  f('maxUploadSpeed', 'value', 'max upload bandwidth of one block write', { valueName: 'BITSPERSEC' }),
  f('md5CacheSize', 'value', 'eventual-consistency guard: blocks whose MD5 is remembered after a write (0 = off)', {
    valueName: 'NUM',
    default: '0',
  }),
  f('md5CacheTime', 'value', "how long a written block's MD5 is remembered (0 = until evicted)", { valueName: 'MILLIS', default: '10000' }),
  f('metricsAddress', 'value', 'the address --metricsPort listens on: loopback unless told (0.0.0.0 or :: for every interface)', {
    valueName: 'ADDR',
    default: '127.0.0.1',
  }),
  f('metricsPort', 'value', 'serve /metrics (Prometheus) and /stats.json over HTTP on PORT of --metricsAddress (127.0.0.1)', {
    valueName: 'PORT',
  }),
  f('minWriteDelay', 'value', 'minimum time between writes of the same block (with the guard)', { valueName: 'MILLIS', default: '500' }),
  f('nbd', 'boolean', 'NBD mode', { supported: false, refusal: NBD_REFUSAL }),
  f('nbd-flag', 'value', 'NBD mode', { supported: false, refusal: NBD_REFUSAL }),
  f('nbd-param', 'value', 'NBD mode', { supported: false, refusal: NBD_REFUSAL }),
  f('noAutoDetect', 'boolean', 'do not read the block and file size from block 0'),
  f('noCurlCache', 'boolean', 'a new connection for every request (upstream: no reuse of cURL handles); slower, for debugging'),
  f('password', 'value', 'encryption password (visible to other users: prefer --passwordFile)', { valueName: 'PASSWORD' }),
  f('passwordFile', 'value', 'read the encryption password from the first line of FILE', { valueName: 'FILE' }),
  f('prefix', 'value', 'prefix for object names within the bucket', { valueName: 'STRING', default: '' }),
  f('quiet', 'boolean', 'omit progress output'),
  f('readAhead', 'value', 'blocks to read ahead of a sequential reader', { valueName: 'NUM', default: '4' }),
  f('readAheadTrigger', 'value', 'sequential block reads that start read-ahead', { valueName: 'NUM', default: '2' }),
  f('readOnly', 'boolean', "answer 'Read-only file system' to writes"),
  f('region', 'value', 'AWS region', { valueName: 'REGION', default: 'us-east-1' }),
  f('reset-mounted-flag', 'boolean', "reset the 'already mounted' flag and exit"),
  f('rrs', 'boolean', 'store blocks with reduced redundancy (deprecated: --storageClass=REDUCED_REDUNDANCY)'),
  f(
    'sharedDiskMode',
    'boolean',
    'for a disk shared by hosts under a cluster filesystem (GFS2, OCFS2): every cache off, direct I/O, simultaneous mounts allowed',
  ),
  f('size', 'value', "file size (suffixes 'k', 'm', 'g', 't')", { valueName: 'SIZE', defaultNote: 'auto-detected' }),
  f('sse', 'value', 'server side encryption: AES256 or aws:kms', { valueName: 'TYPE' }),
  f('sse-key-id', 'value', 'KMS key ID for --sse=aws:kms', { valueName: 'ID' }),
  f('ssl', 'boolean', 'require https (the default base URL already uses it)'),
  f('statsFilename', 'value', 'name of the statistics file', { valueName: 'NAME', default: 'stats' }),
  f(
    'statsFileMirror',
    'value',
    'keep a copy of the statistics file at FILE, replaced atomically every interval (removing it resets the counters)',
    {
      valueName: 'FILE',
    },
  ),
  f('statsFileMirrorInterval', 'value', 'how often --statsFileMirror is rewritten', { valueName: 'MILLIS', default: '1000' }),
  f('storageClass', 'value', 'storage class of written blocks', { valueName: 'TYPE' }),
  f('test', 'boolean', 'local test mode: the bucket is a directory'),
  f('test-delays', 'boolean', 'with --test: delay each block read and write at random, up to 200 ms'),
  f('test-discard', 'boolean', 'with --test: discard writes and read zeros, touching no file (measures the overhead of the rest)'),
  f('test-errors', 'boolean', 'with --test: fail block reads and writes at random (1 in 10), as a flaky store; retries ride them out'),
  f('timeout', 'value', 'max time for one HTTP request', { valueName: 'SECONDS', default: '30' }),
  f('vhost', 'boolean', 'virtual-host style URLs (implied by --region)'),
  f('no-vhost', 'boolean', 'path-style URLs even with --region'),
];

export const FLAG_BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(FLAGS.map((spec) => [spec.name, spec]));

/** A flag's default as written in the table; a flag without one is a bug, caught at load. */
export function flagDefault(name: string): string {
  const value = FLAG_BY_NAME.get(name)?.default;
  if (value === undefined) throw new Error(`flag --${name} has no default in the flag table`);
  return value;
}

/** The help text's default: the value, then the rule that may replace it. */
export function defaultHelp(spec: FlagSpec): string | undefined {
  const value = spec.default === undefined ? undefined : spec.default === '' ? '""' : spec.default;
  const parts = [value, spec.defaultNote].filter((p) => p !== undefined);
  return parts.length === 0 ? undefined : parts.join(', ');
}
