// Without -f or -d, s3backer returns once the mount is ready (exit 0) or has failed (its message,
// exit 1), leaving a detached process serving the mount, as upstream's daemon mode does.

import { spawn } from 'node:child_process';

const DAEMON_ENV = 'S3BACKER_DAEMON_CHILD';

export function isDaemonChild(): boolean {
  return process.env[DAEMON_ENV] === '1' && typeof process.send === 'function';
}

type DaemonMessage = { type: 'ready' } | { type: 'error'; message: string };

/** In the parent: starts the serving process in the foreground mode and reports how it went. */
/** `stdinText`: handed to the serving process on its stdin (the password asked on the terminal). */
export function runAsDaemon(script: string, argv: readonly string[], extraEnv: Record<string, string> = {}, stdinText?: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, '-f', ...argv], {
      detached: true,
      stdio: [stdinText === undefined ? 'ignore' : 'pipe', 'ignore', 'ignore', 'ipc'],
      env: { ...process.env, ...extraEnv, [DAEMON_ENV]: '1' },
    });
    if (stdinText !== undefined) child.stdin?.end(`${stdinText}\n`);
    let settled = false;
    const settle = (code: number, message?: string): void => {
      if (settled) return;
      settled = true;
      if (message) process.stderr.write(`s3backer: ${message}\n`);
      if (child.connected) child.disconnect();
      child.unref();
      resolve(code);
    };
    child.on('message', (msg: DaemonMessage) => {
      if (msg.type === 'ready') settle(0);
      else settle(1, msg.message);
    });
    child.on('error', (err) => settle(1, `cannot start the background process: ${err.message}`));
    child.on('exit', (code, signal) => settle(1, `the background process exited (${signal ?? `code ${code}`}) before mounting`));
  });
}

/** In the child: tells the waiting parent the outcome, then lets it go. */
export function reportToParent(msg: DaemonMessage): void {
  if (!isDaemonChild() || !process.connected) return;
  process.send?.(msg, () => process.disconnect());
}

/** Log lines of a daemon go to syslog (facility daemon, ident s3backer) through logger(1). */
export function syslogWrite(line: string): void {
  const m = /^s3backer: (?:(error|warn|debug): )?/.exec(line);
  const priority = m?.[1] === 'error' ? 'err' : m?.[1] === 'warn' ? 'warning' : m?.[1] === 'debug' ? 'debug' : 'info';
  const text = line.slice(m?.[0].length ?? 0).trimEnd();
  const child = spawn('logger', ['-t', 's3backer', '-p', `daemon.${priority}`, '--', text], { stdio: 'ignore' });
  child.on('error', () => {});
  child.unref();
}
