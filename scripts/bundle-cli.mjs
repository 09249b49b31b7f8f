// Bundles the command (dist/cli/command.js, compiled by tsc) with its dependencies into
// dist/cli/s3backer.bundle.js, which dist/cli/main.js runs as a vm script (codeCache.ts). The
// packages' ES module builds are preferred where they ship one: esbuild keeps only what is used of
// them (of @smithy/core, the few helpers the signer calls). The S3 SDK client, loaded only to list
// a bucket, stays a dependency loaded from node_modules, as does the native addon.
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'cli', 's3backer.bundle.js');
const result = await build({
  entryPoints: [join(root, 'dist', 'cli', 'command.js')],
  outfile,
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
// A vm script has no loader for import() (Node's is experimental and warns on every run): the
// SDK's few dynamic imports of built-in modules become requires, and any other fails the build.
const text = readFileSync(outfile, 'utf8').replace(/\bimport\(("node:[a-z_/]+")\)/g, 'Promise.resolve(require($1))');
const left = text.match(/.{0,60}\bimport\(.{0,40}/);
if (left) throw new Error(`bundle-cli: a dynamic import() is left in the bundle: ${left[0]}`);
// commander loads node:child_process as it loads (about 4 ms of a start) only to run a
// subcommand's own executable, which the command never does: loaded when first used instead.
const COMMANDER_CHILD = 'var childProcess = require("node:child_process");';
if (!text.includes(COMMANDER_CHILD)) throw new Error(`bundle-cli: commander's require of child_process changed; look again`);
const lazy = text.replace(COMMANDER_CHILD, 'var childProcess = { get spawn() { return require("node:child_process").spawn; } };');
writeFileSync(outfile, lazy);
const inputs = Object.keys(result.metafile.inputs).length;
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
console.log(`bundle-cli: ${inputs} modules into dist/cli/s3backer.bundle.js (${Math.round(bytes / 1024)} KiB)`);
