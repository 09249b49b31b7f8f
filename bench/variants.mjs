// What the A/B scripts (pairs.mjs, firstByte.mjs, idleReuse.mjs) run: variants given as
// 'NAME|TREE|S3BACKER FLAGS|NODE FLAGS', a built tree of ours or `upstream` for upstream's newest
// build (as run.mjs finds it), their command line, and the checks before any of them runs.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const words = (text) => text.split(' ').filter(Boolean);

/** Upstream's newest build: S3BACKER_UPSTREAM_BIN, or what scripts/setup.sh built. */
function newestUpstream() {
  return process.env.S3BACKER_UPSTREAM_BIN ?? readFileSync(join(HERE, '..', '.cache', 'upstream-bin'), 'utf8').trim();
}

/** Each variant's name, tree, command (Node and its flags, or upstream's binary) and s3backer flags. */
export function parseVariants(specs) {
  return specs.map((spec) => {
    const [name, tree, flags = '', nodeFlags = ''] = spec.split('|');
    const command =
      tree === 'upstream'
        ? [newestUpstream()]
        : [process.execPath, ...words(nodeFlags), join(resolve(tree ?? ''), 'dist', 'cli', 'main.js')];
    return { name, tree, command, flags: words(flags) };
  });
}

/** Ends the process with one line unless it runs as root and every variant's program is there. */
export function requireRunnable(tool, variants) {
  if (process.getuid?.() !== 0) {
    console.error(`${tool}: needs root (FUSE, loop devices)`);
    process.exit(1);
  }
  for (const v of variants)
    if (!existsSync(v.command.at(-1))) {
      const hint = v.tree === 'upstream' ? 'scripts/setup.sh builds it' : 'npm run build in that tree first';
      console.error(`${tool}: ${v.command.at(-1)} does not exist (${hint})`);
      process.exit(1);
    }
}

/** The tools' environment: a machine-wide NODE_EXTRA_CA_CERTS costs every Node start 0.09 CPU-s here (as run.mjs). */
export const toolEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));

/**
 * A script's command line: its own `options` plus --variant (repeated), --tls and --help. Prints
 * `usage` and exits (0 for --help, 2 otherwise) unless there are `minVariants` variants, each
 * named with a tree, and `valid(values)` holds; then checks they can run (requireRunnable).
 */
export function variantCommandLine(tool, usage, options, { minVariants = 2, valid = () => true } = {}) {
  const { values } = parseArgs({
    options: {
      ...options,
      tls: { type: 'boolean' },
      variant: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean' },
    },
  });
  const variants = parseVariants(values.variant);
  if (values.help || variants.length < minVariants || variants.some((v) => !v.name || !v.tree) || !valid(values)) {
    console.error(usage);
    process.exit(values.help ? 0 : 2);
  }
  requireRunnable(tool, variants);
  return { values, variants };
}
