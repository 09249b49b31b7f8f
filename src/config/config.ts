// The validated configuration of one s3backer invocation, built from parsed flags.
// Every rule here gives one clear message; nothing touches the network or the mount yet.

import * as path from 'node:path';
import { accessSync, constants, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { FLAG_BY_NAME, flagDefault } from './flags';
import { isPowerOfTwo, parseSize } from '../util/sizes';
import { MAX_BLOCKS } from '../format/blockNames';
import { parseTypeOfService } from './ipTos';
import { ConfigError, UsageError } from '../errors';
import type { S3Settings } from '../backend/s3/s3ObjectStore';
import type { TestSettings } from '../backend/faultyObjectStore';
import type { BlockCacheSettings } from '../layers/blockCache';
import type { CacheFileSettings } from '../layers/cacheFile';

export type Mode = 'mount' | 'resetMountedFlag' | 'erase';

/** Every setting of one invocation; each layer's own settings are declared by that layer. */
export interface Config extends S3Settings, TestSettings {
  readonly mode: Mode;
  /** Absolute path; undefined only in modes that do not mount. */
  readonly mountpoint: string | undefined;
  readonly blockHashPrefix: boolean;
  readonly test: boolean;
  /** Given on the command line; otherwise auto-detected or defaulted at mount. */
  readonly blockSize: number | undefined;
  readonly size: number | undefined;
  readonly filename: string;
  readonly statsFilename: string;
  readonly fileMode: number;
  readonly readOnly: boolean;
  readonly force: boolean;
  /** --sharedDiskMode: no caches, direct I/O, the shared mount token (mounts admit each other). */
  readonly sharedDiskMode: boolean;
  readonly listBlocks: boolean;
  readonly directIO: boolean;
  readonly noAutoDetect: boolean;
  readonly accessId: string | undefined;
  readonly accessKey: string | undefined;
  readonly accessFile: string;
  readonly accessFileGiven: boolean;
  /** Credentials of the EC2 instance role (from the metadata service). */
  readonly ec2Iam: { readonly role: string | undefined; readonly imdsV2: boolean } | undefined;
  readonly defaultContentEncoding: string | undefined;
  /** --metricsPort: serve /metrics and /stats.json at this port; undefined = off. */
  readonly metricsPort: number | undefined;
  /** --metricsAddress: where that port listens (an IP address; loopback by default). */
  readonly metricsAddress: string;
  /** --statsFileMirror: a copy of the stats file, rewritten every intervalMs. */
  readonly statsMirror: { readonly path: string; readonly intervalMs: number } | undefined;
  readonly blockCache: BlockCacheConfig;
  readonly codec: CodecConfig;
  /** The eventual-consistency guard; undefined = off (the default). */
  readonly ecProtect: { readonly cacheSize: number; readonly cacheTimeMs: number; readonly minWriteDelayMs: number } | undefined;
  readonly initialRetryPauseMs: number;
  readonly maxRetryPauseMs: number;
  readonly foreground: boolean;
  readonly debug: boolean;
  readonly quiet: boolean;
  /** --logFile, absolute: log lines go there (stamped) instead of syslog or stderr. */
  readonly logFile: string | undefined;
  readonly fuseOptions: readonly string[];
}

/** The block cache's settings and its cache file's, each declared by its module. */
export interface BlockCacheConfig extends BlockCacheSettings, CacheFileSettings {}

export interface CodecConfig {
  readonly compression: 'deflate' | 'zstd' | undefined;
  readonly level: number | undefined;
  /** Canonical cipher name; undefined = no encryption. */
  readonly cipher: string | undefined;
  /** From --password or --passwordFile; undefined with a cipher means: ask on the terminal. */
  readonly password: string | undefined;
  readonly passwordFromCommandLine: boolean;
  /** Where --passwordFile pointed, for the permission check. */
  readonly passwordFile: string | undefined;
  readonly keyLength: number | undefined;
}

const CIPHERS = ['AES-128-CBC', 'AES-192-CBC', 'AES-256-CBC'];

export const DEFAULT_BLOCK_SIZE = parseSize(flagDefault('blockSize'));
export const MIN_BLOCK_SIZE = 512;

export interface ParsedArgs {
  readonly flags: Readonly<Record<string, string | boolean>>;
  readonly positionals: readonly string[];
  readonly foreground: boolean;
  readonly debug: boolean;
  readonly fuseOptions: readonly string[];
}

/** Upstream's list of flags --sharedDiskMode refuses: every one would cache something. */
export const SHARED_DISK_REFUSED = [
  'listBlocks',
  'listBlocksThreads',
  'blockCacheFileAdvise',
  'blockCacheSize',
  'blockCacheSync',
  'blockCacheThreads',
  'blockCacheTimeout',
  'blockCacheWriteDelay',
  'blockCacheMaxDirty',
  'blockCacheRecoverDirtyBlocks',
  'readAhead',
  'readAheadTrigger',
  'blockCacheNumProtected',
  'blockCacheFile',
  'blockCacheNoVerify',
  'minWriteDelay',
  'md5CacheSize',
  'md5CacheTime',
];

const ACCESS_TYPES = ['private', 'public-read', 'public-read-write', 'authenticated-read'];
const STORAGE_CLASSES = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'REDUCED_REDUNDANCY',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'GLACIER_IR',
  'DEEP_ARCHIVE',
  'OUTPOSTS',
];
const SSE_TYPES = ['AES256', 'aws:kms'];
const DEFAULT_REGION = flagDefault('region');

function str(flags: ParsedArgs['flags'], name: string): string | undefined {
  const v = flags[name];
  if (v === undefined || v === false) return undefined;
  if (v === true) throw new ConfigError(`--${name} needs a value (--${name}=...)`);
  return v;
}

/** A whole-number flag, its default from the flag table. */
function int(flags: ParsedArgs['flags'], name: string, min = 0): number {
  const text = str(flags, name) ?? flagDefault(name);
  if (!/^\d+$/.test(text.trim())) throw new ConfigError(`--${name}: "${text}" is not a whole number`);
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n) || n < min) throw new ConfigError(`--${name}: ${text} is out of range (at least ${min})`);
  return n;
}

function size(flags: ParsedArgs['flags'], name: string): number | undefined {
  const text = str(flags, name);
  if (text === undefined) return undefined;
  try {
    return parseSize(text);
  } catch (err) {
    throw new ConfigError(`--${name}: ${(err as Error).message}`);
  }
}

/** Checks a geometry (given or auto-detected) and returns its block count. */
export function checkGeometry(blockSize: number, fileSize: number): number {
  if (!isPowerOfTwo(blockSize)) throw new ConfigError(`block size ${blockSize} is not a power of two`);
  if (blockSize < MIN_BLOCK_SIZE) throw new ConfigError(`block size ${blockSize} is below the minimum of ${MIN_BLOCK_SIZE}`);
  if (fileSize <= 0) throw new ConfigError(`file size must be positive`);
  if (fileSize % blockSize !== 0) {
    throw new ConfigError(`file size ${fileSize} is not a multiple of the block size ${blockSize}`);
  }
  const numBlocks = fileSize / blockSize;
  if (numBlocks > MAX_BLOCKS) {
    throw new ConfigError(`file size ${fileSize} needs ${numBlocks} blocks of ${blockSize} bytes: more than 2^32`);
  }
  return numBlocks;
}

export function buildConfig(args: ParsedArgs, env: NodeJS.ProcessEnv = process.env): Config {
  const { flags } = args;
  for (const name of Object.keys(flags)) {
    const spec = FLAG_BY_NAME.get(name);
    if (!spec) throw new UsageError(`unknown option --${name}`);
    if (!spec.supported) throw new ConfigError(spec.refusal ?? `--${name} is not supported yet by this version of s3backer`);
  }
  if (flags['reset-mounted-flag'] === true && flags['erase'] === true) {
    throw new ConfigError('--erase and --reset-mounted-flag cannot be combined');
  }
  const sharedDiskMode = flags['sharedDiskMode'] === true;
  if (sharedDiskMode) {
    const refused = SHARED_DISK_REFUSED.find((name) => flags[name] !== undefined);
    if (refused !== undefined) throw new ConfigError(`--${refused} cannot be used with --sharedDiskMode, which turns every cache off`);
  }
  const mode: Mode = flags['reset-mounted-flag'] === true ? 'resetMountedFlag' : flags['erase'] === true ? 'erase' : 'mount';
  const wanted = mode === 'mount' ? 2 : 1;
  if (mode !== 'mount' && args.positionals.length === 2) {
    throw new ConfigError(`no mountpoint goes with --${mode === 'erase' ? 'erase' : 'reset-mounted-flag'}`);
  }
  if (args.positionals.length !== wanted) {
    const usage = mode === 'mount' ? 'bucket and mountpoint' : 'bucket';
    throw new UsageError(
      args.positionals.length < wanted ? `missing argument: expected ${usage}` : `too many arguments: expected ${usage}`,
    );
  }
  const test = flags['test'] === true;
  let bucketArg = args.positionals[0] ?? '';
  if (bucketArg === '') throw new ConfigError('the bucket name is empty');
  let prefix = str(flags, 'prefix') ?? flagDefault('prefix');
  if (test) {
    // Resolved first: a relative directory would change meaning if the working directory did.
    bucketArg = path.resolve(bucketArg);
  } else {
    // "bucket/sub/dir" means bucket "bucket" with prefix "sub/dir/" ahead of --prefix.
    const slash = bucketArg.indexOf('/');
    if (slash >= 0) {
      const sub = bucketArg.slice(slash + 1).replace(/\/+$/, '');
      bucketArg = bucketArg.slice(0, slash);
      if (sub !== '') prefix = `${sub}/${prefix}`;
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(bucketArg)) throw new ConfigError(`invalid bucket name "${bucketArg}"`);
  }

  const blockSize = size(flags, 'blockSize');
  const fileSize = size(flags, 'size');
  if (blockSize !== undefined) checkGeometry(blockSize, fileSize ?? blockSize);
  if (fileSize !== undefined) checkGeometry(blockSize ?? DEFAULT_BLOCK_SIZE, fileSize);

  const readOnly = flags['readOnly'] === true;
  const modeText = str(flags, 'fileMode');
  let fileMode = readOnly ? 0o400 : 0o600;
  if (modeText !== undefined) {
    if (!/^[0-7]{1,4}$/.test(modeText)) throw new ConfigError(`--fileMode: "${modeText}" is not an octal mode`);
    fileMode = parseInt(modeText, 8);
  }
  const filename = str(flags, 'filename') ?? flagDefault('filename');
  const statsFilename = str(flags, 'statsFilename') ?? flagDefault('statsFilename');
  for (const [flag, name] of [
    ['filename', filename],
    ['statsFilename', statsFilename],
  ] as const) {
    if (name === '' || name.includes('/') || name === '.' || name === '..') {
      throw new ConfigError(`--${flag}: "${name}" is not a valid file name`);
    }
  }
  if (filename === statsFilename) throw new ConfigError('--filename and --statsFilename must differ');

  const accessType = str(flags, 'accessType') ?? flagDefault('accessType');
  if (!ACCESS_TYPES.includes(accessType)) {
    throw new ConfigError(`--accessType: "${accessType}" is not one of ${ACCESS_TYPES.join(', ')}`);
  }
  const authVersion = str(flags, 'authVersion');
  if (authVersion !== undefined && authVersion !== 'aws4') {
    throw new ConfigError(`--authVersion=${authVersion} is not supported: only aws4 signing is implemented`);
  }
  // Upstream's rules: a --region other than the default picks that region's endpoint, and any
  // --region means virtual-host style unless --no-vhost.
  const regionGiven = str(flags, 'region');
  const region = regionGiven ?? DEFAULT_REGION;
  const vhost = flags['vhost'] === true || (regionGiven !== undefined && flags['no-vhost'] !== true);
  const baseURLGiven = str(flags, 'baseURL');
  const baseURL = baseURLGiven ?? (region === DEFAULT_REGION ? 'https://s3.amazonaws.com/' : `https://s3.${region}.amazonaws.com/`);
  let parsedURL: URL;
  try {
    parsedURL = new URL(baseURL);
  } catch {
    throw new ConfigError(`--baseURL: "${baseURL}" is not a URL`);
  }
  if (parsedURL.protocol !== 'http:' && parsedURL.protocol !== 'https:') {
    throw new ConfigError(`--baseURL: "${baseURL}" must start with http:// or https://`);
  }
  if (!baseURL.endsWith('/')) throw new ConfigError(`--baseURL: "${baseURL}" must end with a "/"`);
  if (flags['ssl'] === true && parsedURL.protocol !== 'https:') {
    throw new ConfigError(`--ssl conflicts with the non-https --baseURL ${baseURL}`);
  }

  const storageClass = flags['rrs'] === true ? 'REDUCED_REDUNDANCY' : str(flags, 'storageClass');
  if (flags['rrs'] === true && str(flags, 'storageClass') !== undefined) {
    throw new ConfigError('--rrs and --storageClass cannot be combined');
  }
  if (storageClass !== undefined && !STORAGE_CLASSES.includes(storageClass)) {
    throw new ConfigError(`--storageClass: "${storageClass}" is not one of ${STORAGE_CLASSES.join(', ')}`);
  }
  const sse = str(flags, 'sse');
  const sseKeyId = str(flags, 'sse-key-id');
  if (sse !== undefined && !SSE_TYPES.includes(sse)) throw new ConfigError(`--sse: "${sse}" is not AES256 or aws:kms`);
  if (sse === 'aws:kms' && sseKeyId === undefined) throw new ConfigError('--sse=aws:kms needs --sse-key-id');
  if (sseKeyId !== undefined && sse !== 'aws:kms') throw new ConfigError('--sse-key-id goes with --sse=aws:kms');
  const cacert = str(flags, 'cacert');
  if (cacert !== undefined) {
    try {
      accessSync(cacert, constants.R_OK);
    } catch {
      throw new ConfigError(`--cacert: cannot read ${cacert}`);
    }
  }

  // Credentials: --accessKeyEnv names the variable holding the key; an EC2 role excludes keys.
  let accessKey = str(flags, 'accessKey');
  const accessKeyEnv = str(flags, 'accessKeyEnv');
  if (accessKeyEnv !== undefined) {
    if (accessKey !== undefined) throw new ConfigError('--accessKey and --accessKeyEnv cannot be combined');
    accessKey = env[accessKeyEnv];
    if (accessKey === undefined) throw new ConfigError(`--accessKeyEnv: environment variable ${accessKeyEnv} is not set`);
  }
  const accessId = typeof flags['accessId'] === 'string' ? flags['accessId'] : undefined;
  if (accessKey !== undefined && accessId === undefined) throw new ConfigError('an access key was given but no --accessId');
  const iam = flags['accessEC2IAM'];
  const imdsV2 = flags['accessEC2IAM-IMDSv2'] === true;
  const ec2Iam = iam !== undefined || imdsV2 ? { role: typeof iam === 'string' && iam !== '' ? iam : undefined, imdsV2 } : undefined;
  if (ec2Iam && (accessId !== undefined || accessKey !== undefined)) {
    throw new ConfigError("--accessEC2IAM takes the role's credentials: do not give --accessId or --accessKey too");
  }
  const blockCache: BlockCacheConfig = {
    // Shared disk mode: no block cache (upstream zeroes its size), so no read-ahead either.
    size: sharedDiskMode ? 0 : int(flags, 'blockCacheSize'),
    writeDelayMs: int(flags, 'blockCacheWriteDelay'),
    // Not upstream's 20: these are requests in flight, not threads, so more cost next to nothing
    // and keep a high-latency store busy (at 20 ms per request, 64 upload 256 KiB blocks at
    // about 700 MB/s).
    threads: int(flags, 'blockCacheThreads', 1),
    timeoutMs: int(flags, 'blockCacheTimeout'),
    maxDirty: int(flags, 'blockCacheMaxDirty'),
    sync: flags['blockCacheSync'] === true,
    numProtected: int(flags, 'blockCacheNumProtected'),
    readAhead: int(flags, 'readAhead'),
    readAheadTrigger: int(flags, 'readAheadTrigger', 1),
    file: str(flags, 'blockCacheFile') === undefined ? undefined : path.resolve(str(flags, 'blockCacheFile') ?? ''),
    noVerify: flags['blockCacheNoVerify'] === true,
    recoverDirty: flags['blockCacheRecoverDirtyBlocks'] === true,
    fileAdvise: flags['blockCacheFileAdvise'] === true,
  };
  if (blockCache.fileAdvise && blockCache.file === undefined) throw new ConfigError('--blockCacheFileAdvise needs --blockCacheFile');
  if (blockCache.file !== undefined && blockCache.size === 0) {
    throw new ConfigError('--blockCacheFile needs a block cache: --blockCacheSize must not be 0');
  }
  if (blockCache.maxDirty > blockCache.size && blockCache.size > 0) {
    throw new ConfigError(`--blockCacheMaxDirty (${blockCache.maxDirty}) cannot exceed --blockCacheSize (${blockCache.size})`);
  }
  if (blockCache.size > 0 && blockCache.size < 2) throw new ConfigError('--blockCacheSize must be 0 (no cache) or at least 2');
  const codec = codecConfig(flags);
  const md5CacheSize = int(flags, 'md5CacheSize');
  const ecProtect =
    md5CacheSize > 0 && !sharedDiskMode
      ? { cacheSize: md5CacheSize, cacheTimeMs: int(flags, 'md5CacheTime'), minWriteDelayMs: int(flags, 'minWriteDelay') }
      : undefined;
  if (!ecProtect && (str(flags, 'md5CacheTime') !== undefined || str(flags, 'minWriteDelay') !== undefined)) {
    throw new ConfigError('--md5CacheTime and --minWriteDelay need the guard on: give --md5CacheSize too');
  }
  const speed = (name: string): number | undefined => {
    const bits = size(flags, name);
    if (bits === 0) throw new ConfigError(`--${name} must be positive`);
    return bits;
  };

  const initialRetryPauseMs = int(flags, 'initialRetryPause');
  const maxRetryPauseMs = int(flags, 'maxRetryPause');
  if (maxRetryPauseMs < initialRetryPauseMs) {
    throw new ConfigError('--maxRetryPause must be at least --initialRetryPause');
  }
  const timeoutSec = int(flags, 'timeout', 1);
  const metricsPort = str(flags, 'metricsPort') === undefined ? undefined : int(flags, 'metricsPort');
  if (metricsPort !== undefined && (metricsPort < 1 || metricsPort > 65535)) {
    throw new ConfigError(`--metricsPort: ${metricsPort} is not a TCP port (1-65535)`);
  }
  const metricsAddress = str(flags, 'metricsAddress') ?? flagDefault('metricsAddress');
  if (isIP(metricsAddress) === 0)
    throw new ConfigError(`--metricsAddress: "${metricsAddress}" is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)`);
  if (str(flags, 'metricsAddress') !== undefined && metricsPort === undefined)
    throw new ConfigError('--metricsAddress needs --metricsPort');

  const mirrorFile = str(flags, 'statsFileMirror');
  // As upstream: the interval alone is ignored.
  const mirrorInterval = int(flags, 'statsFileMirrorInterval', 1);
  const tosText = str(flags, 'ipTOS');
  const ipTos = tosText === undefined ? undefined : parseTypeOfService(tosText);
  if (tosText !== undefined && ipTos === undefined) {
    throw new ConfigError(`--ipTOS: "${tosText}" is not a number 0-255 nor one of lowdelay, throughput, reliability, lowcost, mincost`);
  }
  const faults = { errors: flags['test-errors'] === true, delays: flags['test-delays'] === true, discard: flags['test-discard'] === true };
  const testFaults = faults.errors || faults.delays || faults.discard ? faults : undefined;
  if (testFaults && !test) {
    const given = Object.entries(faults).find(([, on]) => on)?.[0] ?? 'errors';
    throw new ConfigError(`--test-${given} goes with --test (it injects faults into the local test backend)`);
  }

  const mountpointArg = mode === 'mount' ? args.positionals[1] : undefined;
  const accessFileGiven = str(flags, 'accessFile') !== undefined;
  return {
    mode,
    bucket: bucketArg,
    mountpoint: mountpointArg === undefined ? undefined : path.resolve(mountpointArg),
    prefix,
    blockHashPrefix: flags['blockHashPrefix'] === true,
    test,
    blockSize,
    size: fileSize,
    filename,
    statsFilename,
    fileMode,
    readOnly,
    force: flags['force'] === true,
    sharedDiskMode,
    listBlocks: flags['listBlocks'] === true && !sharedDiskMode,
    listBlocksThreads: int(flags, 'listBlocksThreads', 1),
    // Another host's writes must be seen: the kernel's page cache is off too.
    directIO: flags['directIO'] === true || sharedDiskMode,
    noAutoDetect: flags['noAutoDetect'] === true,
    baseURL,
    vhost,
    region,
    accessId,
    accessKey,
    accessFile: path.resolve(str(flags, 'accessFile') ?? path.join(env['HOME'] ?? '/', '.s3backer_passwd')),
    accessFileGiven,
    ec2Iam,
    accessType,
    storageClass,
    sse,
    sseKeyId,
    insecure: flags['insecure'] === true,
    cacert: cacert === undefined ? undefined : path.resolve(cacert),
    maxUploadSpeed: speed('maxUploadSpeed'),
    maxDownloadSpeed: speed('maxDownloadSpeed'),
    defaultContentEncoding: str(flags, 'defaultContentEncoding'),
    debugHttp: flags['debug-http'] === true,
    metricsPort,
    metricsAddress,
    statsMirror: mirrorFile === undefined ? undefined : { path: path.resolve(mirrorFile), intervalMs: mirrorInterval },
    ipTos,
    noCurlCache: flags['noCurlCache'] === true,
    testFaults,
    blockCache,
    timeoutMs: timeoutSec * 1000,
    initialRetryPauseMs,
    maxRetryPauseMs,
    foreground: args.foreground || args.debug,
    debug: args.debug || flags['debug'] === true,
    quiet: flags['quiet'] === true,
    logFile: str(flags, 'logFile') === undefined ? undefined : path.resolve(str(flags, 'logFile') ?? ''),
    fuseOptions: args.fuseOptions,
    codec,
    ecProtect,
  };
}

function codecConfig(flags: ParsedArgs['flags']): CodecConfig {
  const compressFlag = flags['compress'];
  const encryptFlag = flags['encrypt'];
  let compression: CodecConfig['compression'];
  let level = str(flags, 'compress-level') === undefined ? undefined : int(flags, 'compress-level', 1);
  if (compressFlag === true || compressFlag === '') compression = 'deflate';
  else if (typeof compressFlag === 'string') {
    if (compressFlag === 'deflate' || compressFlag === 'zstd') compression = compressFlag;
    else if (/^\d+$/.test(compressFlag)) {
      compression = 'deflate';
      level = Number(compressFlag);
    } else throw new ConfigError(`--compress: "${compressFlag}" is not deflate, zstd or a level 1-9`);
  }
  if (compression === undefined && level !== undefined) throw new ConfigError('--compress-level needs --compress');
  if (compression === 'deflate' && level !== undefined && (level < 1 || level > 9)) {
    throw new ConfigError(`--compress: deflate level ${level} is not 1-9`);
  }
  if (compression === 'zstd' && level !== undefined && level > 22) throw new ConfigError(`--compress: zstd level ${level} is not 1-22`);
  let cipher: string | undefined;
  if (encryptFlag !== undefined) {
    const name = encryptFlag === true || encryptFlag === '' ? 'AES-128-CBC' : String(encryptFlag).toUpperCase();
    if (!CIPHERS.includes(name)) throw new ConfigError(`--encrypt: cipher "${encryptFlag}" is not supported: use ${CIPHERS.join(', ')}`);
    cipher = name;
    compression ??= 'deflate'; // as upstream: encryption implies compression
  }
  const given = str(flags, 'password');
  const file = str(flags, 'passwordFile');
  if (given !== undefined && file !== undefined) throw new ConfigError('--password and --passwordFile cannot be combined');
  let password = given;
  if (file !== undefined) {
    try {
      password = (readFileSync(file, 'utf8').split('\n')[0] ?? '').replace(/\r$/, '');
    } catch (err) {
      throw new ConfigError(`cannot read --passwordFile ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (password === '') throw new ConfigError(`--passwordFile ${file}: the first line is empty`);
  }
  if (password !== undefined && cipher === undefined) throw new ConfigError('a password was given without --encrypt');
  const keyLength = str(flags, 'keyLength') === undefined ? undefined : int(flags, 'keyLength', 1);
  if (keyLength !== undefined && cipher === undefined) throw new ConfigError('--keyLength needs --encrypt');
  return { compression, level, cipher, password, passwordFromCommandLine: given !== undefined, passwordFile: file, keyLength };
}
