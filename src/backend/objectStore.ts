import { StoreError } from '../errors';
// The object-level interface the block backend stores through: S3, or a directory for --test.

export interface ObjectHead {
  /** User metadata (x-amz-meta-*), names lowercased without the prefix. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly contentEncoding: string | undefined;
  readonly etag: string | undefined;
}

export interface StoredObject extends ObjectHead {
  readonly body: Buffer;
}

export interface PutOptions {
  readonly contentType: string;
  /** Base64 MD5 of the body, checked by the server. */
  readonly contentMD5?: string;
  readonly contentEncoding?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Write only if the object is absent (`ifNoneMatch: '*'`) or still has this ETag. */
  readonly condition?: WriteCondition;
}

/** S3's conditional writes: create-exclusive, or compare-and-swap on the ETag. */
export type WriteCondition = { readonly ifNoneMatch: '*' } | { readonly ifMatch: string };

export interface PutResult {
  /** The new object's ETag, as the store gave it (quotes included); undefined when it gave none. */
  readonly etag: string | undefined;
}

export interface ListOptions {
  /** Lists only keys after this one (S3's StartAfter), so a lister can begin inside the key space. */
  readonly startAfter?: string;
  /** Aborting stops the listing: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** S3's limit on the keys of one multi-object delete (POST ?delete). */
export const MAX_KEYS_PER_DELETE = 1000;

/** Receives each page of keys, in key order; returning false ends the listing there. */
export type KeysCallback = (keys: readonly string[]) => boolean | void;

export interface ObjectStore {
  /** Where the objects live, for messages: "s3://bucket/prefix" or a directory. */
  readonly description: string;
  /**
   * Whether disjoint key ranges listed side by side go faster than one listing (each range is a
   * request chain of its own); false where one listing reads everything in one go anyway.
   */
  readonly listsInParallel: boolean;
  /** Fails with a clear message when the bucket or directory cannot be used at all. */
  checkAccess(): Promise<void>;
  /**
   * `maxBytes`: a longer answer fails (like no answer) instead of being buffered. `into`: a body of
   * exactly its length may be read into it (the caller's reusable buffer) instead of a new one.
   */
  get(key: string, maxBytes?: number, into?: Buffer): Promise<StoredObject | null>;
  /** GET unless the object's ETag (hex MD5 of a plain body) is `etag`: 'unchanged' then (HTTP 304). */
  getIfChanged(key: string, etag: string, maxBytes?: number): Promise<StoredObject | null | 'unchanged'>;
  head(key: string): Promise<ObjectHead | null>;
  /**
   * Resolves with the ETag the store answered. With a condition the object is not as said:
   * ConditionFailedError; a store that does not implement conditions: ConditionUnsupportedError.
   */
  put(key: string, body: Buffer, options: PutOptions): Promise<PutResult>;
  /** Deleting a missing object succeeds; `ifMatch` deletes only the object with that ETag (errors as put's). */
  delete(key: string, condition?: { readonly ifMatch: string }): Promise<void>;
  /**
   * Deletes every key (missing ones are fine), in requests of up to MAX_KEYS_PER_DELETE where the
   * store has a bulk delete. Rejects if any key could not be deleted, and only once every
   * request it started has ended (a caller that rewrites a block next must not race a delete).
   */
  deleteMany(keys: readonly string[]): Promise<void>;
  /** Calls onKeys with each page of keys starting with prefix, sorted by key. */
  list(prefix: string, onKeys: KeysCallback, options?: ListOptions): Promise<void>;
  close(): void;
}

/** A conditional write found the object otherwise (HTTP 412, or 404 for If-Match on a missing one). */
export class ConditionFailedError extends StoreError {
  constructor(key: string, status: number) {
    super(`${key} is not as the condition required (HTTP ${status})`, status);
    this.name = 'ConditionFailedError';
  }
}

/** The store does not implement the If-Match / If-None-Match headers on writes (HTTP 501, or a 400). */
export class ConditionUnsupportedError extends StoreError {
  constructor(key: string, detail: string, status: number) {
    super(`conditional write of ${key} refused: ${detail}`, status);
    this.name = 'ConditionUnsupportedError';
  }
}
