// The --test backend's fault injection, as upstream's test mode has it: --test-delays waits up to
// 200 ms before each block read or write, --test-errors fails one in ten of them (upstream's own
// rate is 0 %, which tests nothing: ours fails often enough to exercise the retries, which ride
// them out as they would a flaky store's 503s), and --test-discard keeps nothing: writes are
// dropped, every block reads as zeros, and no file is touched.

import type { HttpStats } from './httpStats';
import { withRetries } from './retry';
import type { RetryPolicy } from '../util/retryPauses';
import type { Logger } from '../util/log';
import type { KeysCallback, ListOptions, ObjectHead, ObjectStore, PutOptions, PutResult, StoredObject } from './objectStore';

/** The --test backend's fault injection (--test-errors, --test-delays, --test-discard). */
export interface TestFaults {
  readonly errors: boolean;
  readonly delays: boolean;
  readonly discard: boolean;
}

export interface TestSettings {
  /** undefined: no faults injected. */
  readonly testFaults: TestFaults | undefined;
}

const MAX_DELAY_MS = 200;
const ERROR_RATE = 0.1;

class InjectedError extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class FaultyObjectStore implements ObjectStore {
  readonly description: string;
  readonly listsInParallel: boolean;

  constructor(
    private readonly inner: ObjectStore,
    private readonly faults: TestFaults,
    private readonly policy: RetryPolicy,
    private readonly stats: HttpStats,
    private readonly log: Logger,
    /** Injectable for tests: a number in [0, 1). */
    private readonly random: () => number = Math.random,
  ) {
    this.description = inner.description;
    this.listsInParallel = inner.listsInParallel;
  }

  /** One block operation with the faults asked for; `discarded` is its answer under --test-discard. */
  private async run<T>(operation: string, attempt: () => Promise<T>, discarded: T): Promise<T> {
    if (this.faults.discard) return discarded;
    // Only the injected faults go through the retries: the directory's own answers (a failed
    // condition, say) reach the caller as they are.
    await withRetries(
      operation,
      async () => {
        if (this.faults.delays) await sleep(Math.floor(this.random() * MAX_DELAY_MS));
        if (this.faults.errors && this.random() < ERROR_RATE) throw new InjectedError(`${operation}: injected error (--test-errors)`);
      },
      () => ({ status: 503, message: `${operation}: injected error (--test-errors)`, retryable: true }),
      this.policy,
      this.stats,
      this.log,
    );
    return attempt();
  }

  checkAccess(): Promise<void> {
    return this.inner.checkAccess();
  }

  get(key: string, maxBytes?: number, into?: Buffer): Promise<StoredObject | null> {
    return this.run(`GET ${key}`, () => this.inner.get(key, maxBytes, into), null);
  }

  getIfChanged(key: string, etag: string, maxBytes?: number): Promise<StoredObject | null | 'unchanged'> {
    return this.run(`GET ${key}`, () => this.inner.getIfChanged(key, etag, maxBytes), null);
  }

  head(key: string): Promise<ObjectHead | null> {
    return this.run(`HEAD ${key}`, () => this.inner.head(key), null);
  }

  put(key: string, body: Buffer, options: PutOptions): Promise<PutResult> {
    return this.run(`PUT ${key}`, () => this.inner.put(key, body, options), { etag: undefined });
  }

  delete(key: string, condition?: { readonly ifMatch: string }): Promise<void> {
    return this.run(`DELETE ${key}`, () => this.inner.delete(key, condition), undefined);
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    return this.run(`POST ?delete (${keys.length} keys)`, () => this.inner.deleteMany(keys), undefined);
  }

  list(prefix: string, onKeys: KeysCallback, options?: ListOptions): Promise<void> {
    return this.faults.discard ? Promise.resolve() : this.inner.list(prefix, onKeys, options);
  }

  close(): void {
    this.inner.close();
  }
}
