// Maps errors from the block stack to the negative errno values FUSE answers with.

import Fuse = require('fuse-native');


export function errnoFor(err: unknown): number {
  if (err instanceof RangeError) return Fuse.EINVAL;
  return Fuse.EIO;
}
