// Maps errors from the block stack to the errno values FUSE answers with (positive; the session
// is told their negation).

import { constants } from 'node:os';

export function errnoFor(err: unknown): number {
  if (err instanceof RangeError) return constants.errno.EINVAL;
  return constants.errno.EIO;
}
