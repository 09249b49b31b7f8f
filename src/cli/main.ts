#!/usr/bin/env node
// The s3backer command's entry point: the command from one bundled file (scripts/bundle-cli.mjs
// builds it from command.ts), run with V8's code cache (codeCache.ts). One module starts faster
// than the ~280 files it replaces, the SDK's trimmed to what the command uses: an idle mount takes
// 0.88x the CPU and 0.91x the time (docs/performance.md).

import { join } from 'node:path';
import { SAVE_AFTER_MS, defaultCacheDir, runBundle } from './codeCache';
import { wantsPrestart } from './backgroundGuess';

// A background mount's serving process starts now, while this one loads the command; what starts
// it is loaded only then.
if (wantsPrestart(process.argv.slice(2))) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('./daemonPrestart') as typeof import('./daemonPrestart')).prestartDaemon(join(__dirname, 'main.js'), process.argv.slice(2));
}
const run = runBundle(join(__dirname, 's3backer.bundle.js'), defaultCacheDir());
if (run.cacheUse !== 'used') setTimeout(() => run.save(), SAVE_AFTER_MS).unref();
