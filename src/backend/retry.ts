// Upstream's retry rule: 404 answers at once; other failures are retried with pauses starting at
// --initialRetryPause and doubling, until the pauses add up to --maxRetryPause.

import type { HttpStats } from './httpStats';
import type { Logger } from '../util/log';
import { sleep } from '../util/abort';
import { RetriesExhaustedError, type AttemptFailure } from '../errors';
import { retryPauses, type RetryPolicy } from '../util/retryPauses';

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
  const pauses = retryPauses(policy);
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const failure = classify(err);
      stats.countError(failure.status, failure.code);
      const pause = failure.retryable ? pauses.next() : undefined;
      if (pause === undefined || pause.done === true) throw new RetriesExhaustedError(operation, failure, attempts);
      log.debug(`${operation}: ${failure.message}; retrying in ${pause.value} ms`);
      stats.retries++;
      stats.retryDelayMs += pause.value;
      await sleep(pause.value, signal);
    }
  }
}
