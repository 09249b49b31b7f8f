// The s3backer command: parse, validate, then mount (or run a one-shot mode) and serve until
// unmounted. Every failure is one line on stderr and a non-zero exit. It runs from the bundle
// that main.ts loads (scripts/bundle-cli.mjs).

import { join } from 'node:path';
import { secretFileWarnings } from './secretFiles';
import { parseCommandLine } from './parseArgs';
import { buildConfig } from '../config/config';
import { createLogger } from '../util/log';
import { version } from '../version';
import { runCacheCommand } from './cacheCommand';
import { askPassword, PASSWORD_ON_STDIN_ENV, readPasswordFromStdin } from './password';
import { isDaemonChild, reportToParent, runAsDaemon } from './daemon';
import { awaitGo, PRESTART_ENV, releasePrestarted, takePrestarted } from './daemonPrestart';
import { fileOutput, openLogFile, stderrOutput, syslogOutput, type LogWrite } from './logOutput';
import { UsageError, UserError } from '../errors';
import type { MountHandle } from '../mount/mount';

/** Where log lines go once the configuration is known (the background process's fatal line too). */
let logWrite: LogWrite | undefined;

function fatal(err: unknown): void {
  // A message written for the user stands alone; anything else is a bug, shown with its stack.
  const message = err instanceof UserError ? err.message : ((err as Error)?.stack ?? String(err));
  if (isDaemonChild()) {
    (logWrite ?? syslogOutput())(`s3backer: error: ${message}\n`);
    reportToParent({ type: 'error', message });
    setTimeout(() => process.exit(1), 500); // once the message is out
    return;
  }
  process.stderr.write(`s3backer: ${message}\n`);
  if (err instanceof UsageError) {
    process.stderr.write('Try "s3backer --help" for more information.\n');
  }
  process.exit(1);
}

async function main(argv: readonly string[]): Promise<void> {
  // ps and /proc/PID/cmdline show the title, not the arguments (which may carry --accessKey or
  // --password); once parsed, the bucket and mount point are added.
  process.title = 's3backer';
  // A serving process started ahead of its parent (daemonPrestart.ts) does nothing until told to.
  const go = isDaemonChild() && process.env[PRESTART_ENV] === '1' ? await awaitGo() : undefined;
  if (argv[0] === 'cache') process.exit(runCacheCommand(argv.slice(1)));
  const cli = parseCommandLine(argv, version);
  if (cli.kind === 'exit') {
    process.stdout.write(cli.output);
    process.exit(cli.code);
  }
  let config = buildConfig(cli.args);
  process.title = ['s3backer', config.bucket, config.mountpoint].filter((s) => s !== undefined && s !== '').join(' ');
  if (config.codec.passwordFromCommandLine) {
    process.stderr.write('s3backer: warning: --password is visible to other users of this machine; --passwordFile is safer\n');
  }
  const secretFiles = secretFileWarnings([
    [config.codec.passwordFile, '--passwordFile'],
    [config.accessKey === undefined && config.accessId !== '' ? config.accessFile : undefined, 'access file'],
  ]);
  for (const warning of secretFiles) process.stderr.write(`s3backer: warning: ${warning}\n`);
  const daemon = isDaemonChild();
  // No password given for --encrypt: ask on the terminal (a daemon's child gets it from its parent:
  // with the go when it was started ahead, else on stdin).
  let asked: string | undefined;
  if (config.codec.cipher !== undefined && config.codec.password === undefined) {
    asked = go?.password ?? (process.env[PASSWORD_ON_STDIN_ENV] === '1' ? await readPasswordFromStdin() : await askPassword('Password: '));
    config = { ...config, codec: { ...config.codec, password: asked } };
  }
  if (config.mode === 'mount' && !config.foreground) {
    // The one started ahead has its stderr set already: it cannot write to a log file.
    const prestarted = config.logFile === undefined ? takePrestarted() : undefined;
    releasePrestarted();
    process.exit(
      await runAsDaemon(
        // main.js beside this file (or the bundle), not require.main: mount.s3backer runs the
        // command in its own process.
        join(__dirname, 'main.js'),
        argv,
        asked === undefined ? {} : { [PASSWORD_ON_STDIN_ENV]: '1' },
        asked,
        config.logFile,
        prestarted,
      ),
    );
  }
  releasePrestarted(); // not a background mount after all
  // A write to stderr that fails (a background process's pipe into logger gone, a foreground
  // mount's terminal closed) must not end the mount.
  process.stderr.on('error', () => {});
  logWrite = config.logFile !== undefined ? fileOutput(openLogFile(config.logFile)) : daemon ? syslogOutput() : stderrOutput();
  const log = createLogger({ debug: config.debug, quiet: config.quiet, write: logWrite });
  // Whatever escapes is logged where the mount logs (syslog, the file) before the process ends.
  const crash = (what: string) => (err: unknown) => {
    log.error(`${what}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  };
  process.on('uncaughtException', crash('uncaught exception'));
  process.on('unhandledRejection', crash('unhandled rejection'));
  // The block stack and the S3 client load only here: --help, --version, bad flags and the
  // daemon's parent answer without them (half of the start-up's module loading).
  if (config.mode === 'resetMountedFlag') {
    await (await import('../mount/resetMountedFlag')).resetMountedFlag(config, log);
    return;
  }
  if (config.mode === 'erase') {
    await (await import('../mount/erase')).erase(config, log);
    return;
  }
  // SIGINT, SIGTERM and SIGHUP (as libfuse's handlers: a terminal closed under a foreground
  // mount) unmount. Until the mount begins to change the bucket (its mounted flag)
  // there is nothing to undo and a signal ends the process as by default; from then on, the
  // moments before the mount's handle comes included, it unmounts, once the handle is there.
  let stopping = false;
  const stop = (handle: MountHandle, signal: string): void => {
    // While an unmount waits on a store that refuses the unsaved blocks, a signal gives up on them.
    if (handle.abandon()) {
      log.warn(`${signal}: giving up on the blocks not stored yet`);
      return;
    }
    if (stopping) {
      log.info(`${signal}: still storing what was written; this ends once everything is in the store`);
      return;
    }
    stopping = true;
    log.info(`${signal}: unmounting ${handle.mountpoint}`);
    // Lazily, as upstream (libfuse) does: a signal must end the mount even while files are open.
    handle.unmount({ lazy: true }).catch((err: unknown) => {
      stopping = false;
      log.error((err as Error).message);
    });
  };
  let handle: MountHandle | undefined = undefined;
  let committed = false;
  let pending: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (handle !== undefined) return stop(handle, signal);
    if (committed) {
      pending ??= signal;
      return;
    }
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  handle = await (await import('../mount/mount')).mount(config, log, { onCommit: () => (committed = true) });
  if (daemon) {
    // Paths in the config are absolute: leave the directory we were started in, as daemons do.
    process.chdir('/');
    reportToParent({ type: 'ready' });
  }
  if (pending !== undefined) stop(handle, pending);
  await handle.closed;
  process.exit(0);
}

main(process.argv.slice(2)).catch(fatal);
