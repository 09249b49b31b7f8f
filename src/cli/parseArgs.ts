// Command-line parsing on commander, driven by the flag table. `-o name=value` items that name
// an s3backer flag become `--name=value` (so fstab lines work); the rest are FUSE options.

import { Command, CommanderError, Option } from 'commander';
import { FLAGS, FLAG_BY_NAME, defaultHelp } from '../config/flags';
import { checkFuseOption } from '../fuse/fuseOptions';
import { type ParsedArgs } from '../config/config';
import { expandConfigFiles } from './configFile';
import { ConfigError, UsageError } from '../errors';

export type CliResult = { kind: 'run'; args: ParsedArgs } | { kind: 'exit'; code: number; output: string };

/** Splits `-o a,b=c` / `-oa,b` items out of argv. */
function extractDashO(argv: readonly string[]): { rest: string[]; items: string[] } {
  const rest: string[] = [];
  const items: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    let value: string | undefined;
    if (arg === '-o') {
      value = argv[++i];
      if (value === undefined) throw new ConfigError('-o needs a value');
    } else if (arg.startsWith('-o') && !arg.startsWith('--')) {
      value = arg.slice(2);
    }
    if (value === undefined) rest.push(arg);
    else items.push(...value.split(',').filter((s) => s !== ''));
  }
  return { rest, items };
}

function buildProgram(version: string, out: { text: string }): Command {
  const program = new Command('s3backer')
    .usage(
      '[options] bucket mountpoint\n       s3backer --test [options] directory mountpoint\n' +
        '       s3backer --erase [options] bucket\n       s3backer --reset-mounted-flag [options] bucket\n' +
        '       s3backer cache inspect [--json] [--blocks] FILE',
    )
    .description('Mount an S3 bucket as one file of fixed-size blocks (upstream s3backer compatible).')
    .argument('[bucket]')
    .argument('[mountpoint]')
    .allowExcessArguments(true)
    .helpOption('-h, --help', 'show this help and exit')
    .version(`s3backer version ${version}`, '-v, --version', 'show the version and exit')
    .option('-f', 'run in the foreground')
    .option('-d', 'debug mode: foreground, debug logging')
    .option('-s', 'single-threaded (accepted for compatibility)')
    .option('-o <options>', 'FUSE options, or s3backer flags as name=value (comma separated)')
    .option('-F <file>', 'read more arguments from FILE (as --configFile)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => (out.text += s),
      writeErr: (s) => (out.text += s),
    });
  for (const spec of FLAGS) {
    const value =
      spec.kind === 'value' ? ` <${spec.valueName ?? 'VALUE'}>` : spec.kind === 'optionalValue' ? ` [${spec.valueName ?? 'VALUE'}]` : '';
    const dflt = defaultHelp(spec);
    const help = dflt === undefined ? spec.help : `${spec.help} (default: ${dflt})`;
    const option = new Option(`--${spec.name}${value}`, help);
    // Flags not implemented yet still parse (so they can be refused clearly) but stay out of --help.
    if (!spec.supported) option.hideHelp();
    program.addOption(option);
  }
  return program;
}

export function parseCommandLine(argv: readonly string[], version: string): CliResult {
  const { rest, items } = extractDashO(expandConfigFiles(argv));
  const fuseOptions: string[] = [];
  const flagArgs: string[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    // Without "=", a flag that needs a value would take the next argument as it (`-o size -f`).
    if (eq < 0 && FLAG_BY_NAME.get(name)?.kind === 'value') throw new ConfigError(`-o ${name} needs a value: -o ${name}=VALUE`);
    if (FLAG_BY_NAME.has(name)) flagArgs.push(`--${item}`);
    else {
      const passed = checkFuseOption(item);
      if (passed !== undefined) fuseOptions.push(passed);
    }
  }
  // Upstream's optional values only come as --flag=value: a bare --compress must not swallow the
  // bucket that follows, so it becomes --compress= (an empty value, meaning "the default").
  const optional = new Set(FLAGS.filter((f) => f.kind === 'optionalValue').map((f) => `--${f.name}`));
  const normalized = [...flagArgs, ...rest].map((a) => (optional.has(a) ? `${a}=` : a));
  const out = { text: '' };
  const program = buildProgram(version, out);
  try {
    program.parse(normalized, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return { kind: 'exit', code: 0, output: out.text };
      throw new UsageError(err.message.replace(/^error: /, ''));
    }
    throw err;
  }
  const opts = program.opts<Record<string, string | boolean | undefined>>();
  const flags: Record<string, string | boolean> = {};
  for (const spec of FLAGS) {
    const value = opts[program.options.find((o) => o.long === `--${spec.name}`)?.attributeName() ?? spec.name];
    // commander pairs --no-X with --X on one attribute: false means the negation was given.
    if (spec.name.startsWith('no-')) {
      if (value === false) flags[spec.name] = true;
    } else if (value !== undefined && value !== false) flags[spec.name] = value;
  }
  return {
    kind: 'run',
    args: {
      flags,
      positionals: program.args,
      foreground: opts['f'] === true,
      debug: opts['d'] === true,
      fuseOptions,
    },
  };
}
