// Upstream's pause schedule between attempts: the first pause is --initialRetryPause, each next one
// doubles, and the attempts stop before the pauses would add up to more than --maxRetryPause.
// Shared by the S3 client's retries and the eventual-consistency guard's re-reads.

export interface RetryPolicy {
  readonly initialRetryPauseMs: number;
  readonly maxRetryPauseMs: number;
}

/** The pauses to take between attempts, in order; once it is done, the caller gives up. */
export function* retryPauses(policy: RetryPolicy): Generator<number, void, undefined> {
  let paused = 0;
  for (let pause = policy.initialRetryPauseMs; paused + pause <= policy.maxRetryPauseMs; pause *= 2) {
    yield pause;
    paused += pause;
  }
}
