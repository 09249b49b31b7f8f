// Without -f or -d, s3backer returns once the mount is ready (exit 0) or has failed (its message,
// exit 1), leaving a detached process serving the mount, as upstream's daemon mode does.

import type { ChildProcess } from 'node:child_process';
import { childProcesses } from './childProcesses';
import { accessSync, constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { closeLogFile, openLogFile } from './logOutput';
import type { Prestarted } from './daemonPrestart';
import { DAEMON_ENV } from './backgroundGuess';

export { DAEMON_ENV };

export function isDaemonChild(): boolean {
  return process.env[DAEMON_ENV] === '1' && typeof process.send === 'function';
}

const osSignals = osConstants.signals;

type DaemonMessage = { type: 'ready' } | { type: 'error'; message: string };

/**
 * Where the serving process's stderr goes: --logFile, else one `logger` process for the mount's
 * whole life (its lines carry their syslog priority, see logOutput.ts), so that a log line costs a
 * pipe write, not a process, and whatever else reaches stderr (a crash's report) is in syslog too.
 */
export function daemonStderr(logFile: string | undefined): { target: 'ignore' | number | Writable; done(): void; warning?: string } {
  if (logFile !== undefined) {
    const fd = openLogFile(logFile);
    return { target: fd, done: () => closeLogFile(fd) };
  }
  if (!onPath('logger')) {
    return {
      target: 'ignore',
      done() {},
      warning: 'logger(1) is not installed, so the background process cannot log to syslog; give --logFile=FILE to keep its messages',
    };
  }
  const logger: ChildProcess = childProcesses().spawn('logger', ['--prio-prefix', '-t', 's3backer', '-p', 'daemon.err'], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  logger.on('error', () => {});
  return {
    target: logger.stdin as Writable,
    done: () => {
      // The serving process holds its own copy of the pipe: logger ends when that process does.
      logger.stdin?.destroy();
      logger.unref();
    },
  };
}

function onPath(command: string): boolean {
  return (process.env['PATH'] ?? '/usr/bin:/bin').split(':').some((dir) => {
    try {
      accessSync(path.join(dir || '.', command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * In the parent: starts the serving process in the foreground mode and reports how it went.
 * `stdinText`: handed to the serving process (the password asked on the terminal), on its stdin,
 * or with the go of one `prestarted` (daemonPrestart.ts), which is used instead of a new one.
 */
export function runAsDaemon(
  script: string,
  argv: readonly string[],
  extraEnv: Record<string, string> = {},
  stdinText?: string,
  logFile?: string,
  prestarted?: Prestarted,
): Promise<number> {
  // A signal while we wait (Ctrl-C on a mount that takes long) cancels the mount: passed on to
  // the serving process, which ends at once before the bucket is marked, or else unmounts as soon
  // as it is up; we then exit as the signal says. The handlers go in before the serving process is
  // started or told to go: until then a signal kills this process outright, and one arriving just
  // after the go left a serving process that nobody would stop (a test caught it, 1 run in 6).
  // Node runs the handlers only after this function has returned, when `child` is set.
  // The handlers stay until the process exits: once the outcome is settled (the mount is up), a
  // signal in the instant before the exit is ignored. Taking them off there let such a signal kill
  // this process outright, reporting a cancel while the mount went on serving (a CI run met it).
  let child: ChildProcess | undefined;
  let stoppedBy: NodeJS.Signals | undefined;
  let settled = false;
  const forward = (signal: NodeJS.Signals): void => {
    if (settled) return;
    stoppedBy ??= signal;
    child?.kill(signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
  if (prestarted !== undefined) {
    if (prestarted.warning !== undefined) process.stderr.write(`s3backer: warning: ${prestarted.warning}\n`);
    child = prestarted.child;
    child.send({ type: 'go', ...(stdinText === undefined ? {} : { password: stdinText }) });
  } else {
    const stderr = daemonStderr(logFile);
    if (stderr.warning !== undefined) process.stderr.write(`s3backer: warning: ${stderr.warning}\n`);
    child = childProcesses().spawn(process.execPath, [script, '-f', ...argv], {
      detached: true,
      stdio: [stdinText === undefined ? 'ignore' : 'pipe', 'ignore', stderr.target, 'ipc'],
      env: { ...process.env, ...extraEnv, [DAEMON_ENV]: '1' },
    });
    stderr.done();
    if (stdinText !== undefined) child.stdin?.end(`${stdinText}\n`);
  }
  const serving = child;
  return new Promise((resolve) => {
    const settle = (code: number, message?: string): void => {
      if (settled) return;
      settled = true;
      if (message) process.stderr.write(`s3backer: ${message}\n`);
      if (serving.connected) serving.disconnect();
      serving.unref();
      resolve(code);
    };
    serving.on('message', (msg: DaemonMessage) => {
      // Ready, but told to stop meanwhile: it is unmounting; wait for its exit.
      if (msg.type === 'ready' && stoppedBy === undefined) settle(0);
      else if (msg.type === 'error') settle(1, msg.message);
    });
    serving.on('error', (err) => settle(1, `cannot start the background process: ${err.message}`));
    serving.on('exit', (code, signal) => {
      if (stoppedBy !== undefined)
        settle(
          128 + osSignals[stoppedBy],
          `${stoppedBy}: mount cancelled (the background process ${signal === null ? `exited with ${code}` : `ended by ${signal}`})`,
        );
      else settle(1, `the background process exited (${signal ?? `code ${code}`}) before mounting`);
    });
  });
}

/** In the child: tells the waiting parent the outcome, then lets it go. */
export function reportToParent(msg: DaemonMessage): void {
  if (!isDaemonChild() || !process.connected) return;
  process.send?.(msg, () => process.disconnect());
}
