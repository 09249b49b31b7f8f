// node:tls, loaded when first used: about 8 ms of a mount's start here, which a store reached
// over http never needs.

import type * as Tls from 'node:tls';

let loaded: typeof Tls | undefined;

export function tlsModule(): typeof Tls {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (loaded ??= require('node:tls') as typeof Tls);
}
