#!/usr/bin/env node
// mount.s3backer: what mount(8) runs for `mount -t s3backer` and fstab lines of type s3backer
// (once linked into /sbin). mount calls helpers as `mount.TYPE spec dir [-sfnvw] [-N ns]
// [-o options] [-t type]`; its -f means "fake" and -s "sloppy", not s3backer's foreground and
// single-threaded, so they are taken here and the rest goes to s3backer, run in this process,
// which daemonizes and returns once the disk is mounted.

import * as path from 'node:path';

const USAGE = 'usage: mount.s3backer bucket mountpoint [-fnsvw] [-o options]';

export interface HelperCall {
  /** The s3backer command line, or undefined for a fake mount (-f): nothing to do. */
  readonly argv: readonly string[] | undefined;
}

/** Translates mount(8)'s helper arguments to s3backer's; throws with a message on bad input. */
export function translate(args: readonly string[]): HelperCall {
  const positionals: string[] = [];
  const options: string[] = [];
  let fake = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '-o' || arg === '-t' || arg === '-N') {
      const value = args[++i];
      if (value === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      if (arg === '-o') options.push(value);
      if (arg === '-N') throw new Error('mount namespaces (-N) are not supported');
    } else if (/^-[fnsvrw]+$/.test(arg)) {
      fake ||= arg.includes('f'); // -n (no mtab), -s (sloppy), -v (mount's verbosity): nothing to do
      // -r / -w: mount passes them as well as ro/rw in -o; ro is the one s3backer acts on.
      if (arg.includes('r')) options.push('ro');
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown option ${arg}\n${USAGE}`);
    } else positionals.push(arg);
  }
  if (positionals.length !== 2) throw new Error(USAGE);
  const [spec, dir] = positionals as [string, string];
  const argv = [...(options.length > 0 ? ['-o', options.join(',')] : []), spec, dir];
  return { argv: fake ? undefined : argv };
}

/** mount(8)'s exit statuses for helpers: 1 is a wrong invocation, 32 a mount that failed. */
export const EXIT_USAGE = 1;
export const EXIT_MOUNT_FAILED = 32;

function main(): void {
  let call: HelperCall;
  try {
    call = translate(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`mount.s3backer: ${(err as Error).message}\n`);
    process.exit(EXIT_USAGE);
  }
  if (call.argv === undefined) process.exit(0);
  // The command runs in this process, as if started with these arguments: a child process would
  // start Node once more (40-60 ms here) before the background mount starts it again. s3backer
  // says why on stderr when it fails; whatever the cause, for mount(8) the mount failed.
  process.on('exit', (code) => {
    if (code !== 0) process.exitCode = EXIT_MOUNT_FAILED;
  });
  const cli = path.join(__dirname, 'main.js');
  process.argv = [process.argv[0] ?? process.execPath, cli, ...call.argv];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(cli);
}

if (require.main === module) main();
