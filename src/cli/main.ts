#!/usr/bin/env node
// The s3backer command's entry point: Node's compile cache first, then the command from one
// bundled file (scripts/bundle-cli.mjs builds it from command.ts). One module starts faster than
// the ~280 files it replaces, the SDK's trimmed to what the command uses: an idle mount takes
// 0.88x the CPU and 0.91x the time (docs/performance.md).

import './compileCache';

// eslint-disable-next-line @typescript-eslint/no-require-imports
require('./s3backer.bundle.js');
