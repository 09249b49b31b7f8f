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
}

export interface ListOptions {
  /** Lists only keys after this one (S3's StartAfter), so a lister can begin inside the key space. */
  readonly startAfter?: string;
  /** Aborting stops the listing: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

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
  /** `maxBytes`: a longer answer fails (like no answer) instead of being buffered. */
  get(key: string, maxBytes?: number): Promise<StoredObject | null>;
  /** GET unless the object's ETag (hex MD5 of a plain body) is `etag`: 'unchanged' then (HTTP 304). */
  getIfChanged(key: string, etag: string, maxBytes?: number): Promise<StoredObject | null | 'unchanged'>;
  head(key: string): Promise<ObjectHead | null>;
  /** Resolves with the ETag the store answered (as sent, quotes and all), if any. */
  put(key: string, body: Buffer, options: PutOptions): Promise<string | undefined>;
  /** Deleting a missing object succeeds. */
  delete(key: string): Promise<void>;
  /** Calls onKeys with each page of keys starting with prefix, sorted by key. */
  list(prefix: string, onKeys: KeysCallback, options?: ListOptions): Promise<void>;
  close(): void;
}

/** An error from the store that the caller should show as is: the message names the cause. */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
