// node:child_process, loaded when first used: about 4 ms of a start here, which a mount in the
// foreground never needs (it starts no process).

import type * as ChildProcesses from 'node:child_process';

let loaded: typeof ChildProcesses | undefined;

export function childProcesses(): typeof ChildProcesses {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (loaded ??= require('node:child_process') as typeof ChildProcesses);
}
