// Objects as files in a local directory (--test): one file per object, named by its key, as
// upstream's test mode lays them out. Metadata (block 0's geometry, the mounted flag's token,
// encodings) goes in a hidden sidecar file beside the object, which upstream ignores. ETags are
// S3's for a plain PUT: the quoted hex MD5 of the body. Conditional writes run under an flock on a
// hidden lock file beside the object, so they hold between processes as S3's do.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { md5Hex, tryLockFile } from '../native/addon';
import { forEachLimited } from '../util/batches';
import {
  ConditionFailedError,
  type KeysCallback,
  type ListOptions,
  type ObjectHead,
  type ObjectStore,
  type PutOptions,
  type PutResult,
  type StoredObject,
} from './objectStore';
import { StoreError } from '../errors';

interface Sidecar {
  metadata?: Record<string, string>;
  contentEncoding?: string;
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

const etagOf = (body: Buffer): string => `"${md5Hex(body)}"`;
const sameEtag = (a: string, b: string): boolean => a.replace(/"/g, '').toLowerCase() === b.replace(/"/g, '').toLowerCase();

/** A conditional write waits this long at most for another one on the same key (they take milliseconds). */
const LOCK_WAIT_MS = 30_000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** Files removed at once by deleteMany: the libuv pool has four threads, others want them too. */
const UNLINKS_AT_ONCE = 8;

export class DirObjectStore implements ObjectStore {
  readonly description: string;
  /** One readdir holds every key: listing ranges side by side would only read it again. */
  readonly listsInParallel = false;

  constructor(private readonly dir: string) {
    this.description = dir;
  }

  private filePath(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '.')) throw new StoreError(`invalid key ${key}`);
    return path.join(this.dir, key);
  }

  private sidecarPath(key: string): string {
    const file = this.filePath(key);
    return path.join(path.dirname(file), `.${path.basename(file)}.s3meta`);
  }

  /** Runs `fn` holding the key's lock file (hidden, so never listed; left in place, as flock wants). */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const file = this.filePath(key);
    const lockPath = path.join(path.dirname(file), `.${path.basename(file)}.lock`);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const deadline = Date.now() + LOCK_WAIT_MS;
    let lock = tryLockFile(lockPath);
    while (lock === null) {
      if (Date.now() > deadline) throw new StoreError(`${key}: another process has held ${lockPath} for over ${LOCK_WAIT_MS / 1000} s`);
      await sleep(5);
      lock = tryLockFile(lockPath);
    }
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }

  /** The object's ETag, null when it is missing. */
  private async currentEtag(key: string): Promise<string | null> {
    try {
      return etagOf(await fs.readFile(this.filePath(key)));
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async checkAccess(): Promise<void> {
    let stat;
    try {
      stat = await fs.stat(this.dir);
    } catch (err) {
      throw new StoreError(`test directory ${this.dir} does not exist (${(err as NodeJS.ErrnoException).code})`);
    }
    if (!stat.isDirectory()) throw new StoreError(`test directory ${this.dir} is not a directory`);
    await fs.access(this.dir, fs.constants.W_OK | fs.constants.R_OK).catch(() => {
      throw new StoreError(`test directory ${this.dir} is not readable and writable`);
    });
  }

  private async readSidecar(key: string): Promise<Sidecar> {
    try {
      return JSON.parse(await fs.readFile(this.sidecarPath(key), 'utf8')) as Sidecar;
    } catch (err) {
      if (isMissing(err)) return {};
      throw new StoreError(`unreadable metadata for ${key}: ${(err as Error).message}`);
    }
  }

  async get(key: string): Promise<StoredObject | null> {
    let body: Buffer;
    try {
      body = await fs.readFile(this.filePath(key));
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    const side = await this.readSidecar(key);
    return { body, metadata: side.metadata ?? {}, contentEncoding: side.contentEncoding, etag: etagOf(body) };
  }

  async getIfChanged(key: string, etag: string): Promise<StoredObject | null | 'unchanged'> {
    const obj = await this.get(key);
    return obj !== null && md5Hex(obj.body) === etag.toLowerCase() ? 'unchanged' : obj;
  }

  async head(key: string): Promise<ObjectHead | null> {
    const obj = await this.get(key);
    return obj === null ? null : { metadata: obj.metadata, contentEncoding: obj.contentEncoding, etag: obj.etag };
  }

  /** Writes to a hidden temporary file and renames it, so readers never see half an object. */
  private async writeAtomically(file: string, data: Buffer | string): Promise<void> {
    const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    await fs.mkdir(path.dirname(file), { recursive: true });
    try {
      await fs.writeFile(temp, data);
      await fs.rename(temp, file);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
  }

  async put(key: string, body: Buffer, options: PutOptions): Promise<PutResult> {
    const { condition } = options;
    if (condition === undefined) {
      await this.write(key, body, options);
    } else {
      await this.locked(key, async () => {
        const current = await this.currentEtag(key);
        if ('ifNoneMatch' in condition) {
          if (current !== null) throw new ConditionFailedError(key, 412);
        } else if (current === null) {
          throw new ConditionFailedError(key, 404); // as S3: If-Match on a missing key is NoSuchKey
        } else if (!sameEtag(current, condition.ifMatch)) {
          throw new ConditionFailedError(key, 412);
        }
        await this.write(key, body, options);
      });
    }
    return { etag: etagOf(body) };
  }

  private async write(key: string, body: Buffer, options: PutOptions): Promise<void> {
    const sidecar: Sidecar = {};
    if (options.metadata && Object.keys(options.metadata).length > 0) sidecar.metadata = { ...options.metadata };
    if (options.contentEncoding) sidecar.contentEncoding = options.contentEncoding;
    // Sidecar first: an object never appears with another object's stale metadata.
    if (Object.keys(sidecar).length > 0) await this.writeAtomically(this.sidecarPath(key), JSON.stringify(sidecar));
    else await fs.rm(this.sidecarPath(key), { force: true });
    await this.writeAtomically(this.filePath(key), body);
  }

  async delete(key: string, condition?: { readonly ifMatch: string }): Promise<void> {
    if (condition === undefined) return this.remove(key);
    await this.locked(key, async () => {
      const current = await this.currentEtag(key);
      if (current === null) return; // missing: deleted already, as S3 answers
      if (!sameEtag(current, condition.ifMatch)) throw new ConditionFailedError(key, 412);
      await this.remove(key);
    });
  }

  /** Unlinks each (a missing one is deleted already), a few at a time. */
  deleteMany(keys: readonly string[]): Promise<void> {
    return forEachLimited(keys.length, UNLINKS_AT_ONCE, (i) => this.remove(keys[i]!));
  }

  private async remove(key: string): Promise<void> {
    await fs.rm(this.filePath(key), { force: true });
    await fs.rm(this.sidecarPath(key), { force: true });
  }

  async list(prefix: string, onKeys: KeysCallback, options: ListOptions = {}): Promise<void> {
    // Only the directory that can hold keys with this prefix needs reading.
    const slash = prefix.lastIndexOf('/');
    const sub = slash < 0 ? '' : prefix.slice(0, slash + 1);
    let names: string[];
    try {
      names = await fs.readdir(path.join(this.dir, sub));
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    options.signal?.throwIfAborted();
    const { startAfter = '' } = options;
    const keys = names
      .filter((n) => !n.startsWith('.'))
      .map((n) => sub + n)
      .filter((k) => k.startsWith(prefix) && k > startAfter)
      .sort();
    for (let i = 0; i < keys.length; i += 1000) {
      if (onKeys(keys.slice(i, i + 1000)) === false) return;
    }
  }

  close(): void {}
}
