// The failures whose message is written for the user: the command prints such a message as one
// line, without a stack, and exits non-zero. Any other error is a bug and is printed with its stack.
// Every layer may throw these; this module imports nothing, so no layer reaches up for them.

/** A failure the user can act on: the message names the cause and, where there is one, the fix. */
export class UserError extends Error {}

/** A flag, argument or setting that cannot work, found before anything is changed. */
export class ConfigError extends UserError {}

/** The command line itself is malformed (an unknown option, arguments missing or too many): `--help` shows the right form. */
export class UsageError extends ConfigError {}

/** An answer from the store that the caller should show as is: the message names the cause. */
export class StoreError extends UserError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

/** A failed attempt, with the HTTP status when there was a response. */
export interface AttemptFailure {
  readonly status: number | undefined;
  /** Without an answer: why (ETIMEDOUT, ECONNREFUSED, ENOTFOUND, ...), for the curl_* counters. */
  readonly code?: string | undefined;
  readonly message: string;
  readonly retryable: boolean;
}

/** A request still failing when the retry policy's pauses ran out. */
export class RetriesExhaustedError extends UserError {
  constructor(
    readonly operation: string,
    readonly last: AttemptFailure,
    readonly attempts: number,
  ) {
    super(`${operation} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last.message}`);
  }
}
