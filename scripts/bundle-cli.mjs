// Bundles the command (dist/cli/command.js, compiled by tsc) with its dependencies into
// dist/cli/s3backer.bundle.js, which dist/cli/main.js loads once the compile cache is on. The
// packages' ES module builds are preferred where they ship one: esbuild keeps only what is used of
// them (of @smithy/core, the few helpers the signer calls). The S3 SDK client, loaded only to list
// a bucket, stays a dependency loaded from node_modules, as does the native addon.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const result = await build({
  entryPoints: [join(root, 'dist', 'cli', 'command.js')],
  outfile: join(root, 'dist', 'cli', 's3backer.bundle.js'),
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  mainFields: ['module', 'main'],
  external: ['@aws-sdk/client-s3', '@smithy/node-http-handler'],
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
});
const inputs = Object.keys(result.metafile.inputs).length;
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
console.log(`bundle-cli: ${inputs} modules into dist/cli/s3backer.bundle.js (${Math.round(bytes / 1024)} KiB)`);
