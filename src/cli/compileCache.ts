// Imported first by the command: Node (22.1 and later) keeps the compiled bytecode of the modules
// a mount loads between runs, so a mount's start compiles less (about 25 ms and a tenth of an idle
// mount's CPU here). The cache lives in the user's own cache directory, never in a shared one such
// as /tmp: a root mount must not run code another user could have left there.

import { enableCompileCache } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

if (process.env['NODE_COMPILE_CACHE'] === undefined && typeof enableCompileCache === 'function') {
  const base = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  try {
    enableCompileCache(join(base, 's3backer', 'node-compile-cache'));
  } catch {
    // An unwritable home: start without the cache.
  }
}
