// Upstream's retry rule: 404 answers at once; other failures are retried with pauses starting at
// --initialRetryPause and doubling, until the pauses add up to --maxRetryPause.

import type { HttpStats } from './httpStats';
import type { Logger } from '../util/log';
import { sleep } from '../util/abort';

export interface RetryPolicy {
  readonly initialRetryPauseMs: number;
  readonly maxRetryPauseMs: number;
}

/** A failed attempt, with the HTTP status when there was a response. */
export interface AttemptFailure {
  readonly status: number | undefined;
  /** Without an answer: why (ETIMEDOUT, ECONNREFUSED, ENOTFOUND, ...), for the curl_* counters. */
  readonly code?: string | undefined;
  readonly message: string;
  readonly retryable: boolean;
}

export class RetriesExhaustedError extends Error {
  constructor(
    readonly operation: string,
    readonly last: AttemptFailure,
    readonly attempts: number,
  ) {
    super(`${operation} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last.message}`);
  }
}

export function isRetryableStatus(status: number | undefined): boolean {
  if (status === undefined) return true; // no response: timeout, reset, refused
  if (status >= 500 || (status >= 300 && status < 400)) return true;
  return [401, 403, 408, 409, 412, 429].includes(status);
}

export async function withRetries<T>(
  operation: string,
  attempt: () => Promise<T>,
  classify: (err: unknown) => AttemptFailure,
  policy: RetryPolicy,
  stats: HttpStats,
  log: Logger,
  /** Aborting ends the retries (and the pause between them) at once with the signal's reason. */
  signal?: AbortSignal,
): Promise<T> {
  let pause = policy.initialRetryPauseMs;
  let paused = 0;
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const failure = classify(err);
      stats.countError(failure.status, failure.code);
      if (!failure.retryable || paused + pause > policy.maxRetryPauseMs) {
        throw new RetriesExhaustedError(operation, failure, attempts);
      }
      log.debug(`${operation}: ${failure.message}; retrying in ${pause} ms`);
      stats.retries++;
      stats.retryDelayMs += pause;
      await sleep(pause, signal);
      paused += pause;
      pause *= 2;
    }
  }
}
