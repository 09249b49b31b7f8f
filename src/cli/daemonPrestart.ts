// A background mount starts Node twice: the command, then the process that serves the mount. The
// second start need not wait for the first to load the command and read the flags: when the
// arguments look like a background mount, main.ts starts the serving process at once, and it waits
// for the word to go (with the password asked on the terminal, if any). If the flags turn out to
// ask for something else, or are wrong, the waiting process is let go and exits unseen; runAsDaemon
// starts one the usual way whenever the one started ahead cannot be used. About 60 ms of a
// background mount's start here (docs/performance.md).

import type { ChildProcess } from 'node:child_process';
import { childProcesses } from './childProcesses';
import { daemonStderr } from './daemon';
import { DAEMON_ENV, wantsPrestart } from './backgroundGuess';

export { looksLikeBackgroundMount } from './backgroundGuess';

/** In the serving process: wait for the parent's go before doing anything. */
export const PRESTART_ENV = 'S3BACKER_DAEMON_WAIT';

export interface Go {
  readonly type: 'go';
  /** The password the parent asked on its terminal. */
  readonly password?: string;
}

export interface Prestarted {
  readonly child: ChildProcess;
  /** Said by the parent when the child is used: where its log goes is already decided. */
  readonly warning: string | undefined;
}

// main.ts and the bundle are separate module instances: the child is handed over on the global.
const HANDOFF = Symbol.for('s3backer.prestartedDaemon');
type Holder = { [HANDOFF]?: Prestarted };

/** In main.ts, before the command is loaded: starts the serving process if the guess says so. */
export function prestartDaemon(script: string, argv: readonly string[]): void {
  if (!wantsPrestart(argv)) return;
  const stderr = daemonStderr(undefined);
  const child = childProcesses().spawn(process.execPath, [script, '-f', ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', stderr.target, 'ipc'],
    env: { ...process.env, [DAEMON_ENV]: '1', [PRESTART_ENV]: '1' },
  });
  stderr.done();
  child.on('error', () => {}); // seen by takePrestarted as a child that is gone
  (globalThis as Holder)[HANDOFF] = { child, warning: stderr.warning };
}

/** The serving process started ahead, if it is still there to be used; undefined otherwise. */
export function takePrestarted(): Prestarted | undefined {
  const held = (globalThis as Holder)[HANDOFF];
  delete (globalThis as Holder)[HANDOFF];
  if (held === undefined) return undefined;
  const { child } = held;
  if (child.connected && child.exitCode === null && child.signalCode === null) return held;
  release(child);
  return undefined;
}

/** Lets a serving process started ahead go (it exits): the command does something else. */
export function releasePrestarted(): void {
  const held = takePrestarted();
  if (held !== undefined) release(held.child);
}

function release(child: ChildProcess): void {
  if (child.connected) child.disconnect();
  child.unref();
}

/** In the serving process started ahead: the parent's go, or a silent exit when it lets go. */
export function awaitGo(): Promise<Go> {
  return new Promise((resolve) => {
    const gone = (): void => process.exit(0);
    // The parent died (a signal before it could hand over) while this process was starting.
    if (!process.connected) gone();
    process.once('disconnect', gone);
    process.once('message', (msg: Go) => {
      process.removeListener('disconnect', gone);
      resolve(msg);
    });
  });
}
