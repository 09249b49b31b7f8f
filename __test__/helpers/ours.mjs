// Drives our CLI in child processes: a FUSE mount served by the same process as the test would
// deadlock on synchronous calls, and a child is how users run it anyway.
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { stat, mkdtemp, rm, readFile } from 'node:fs/promises';
import { existsSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const run = promisify(execFile);
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'dist', 'cli', 'main.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Flags that point our CLI at an s3rver started by helpers/s3server.mjs. */
/**
 * A log line of a foreground mount whose stderr is not a terminal, without the time stamp in
 * front (asserted there: ISO 8601, UTC, milliseconds).
 */
export function unstamped(line) {
  const m = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*)$/s.exec(line);
  assert.ok(m, `a time stamp in front of ${JSON.stringify(line)}`);
  return m[1];
}

export function s3Flags(server) {
  return [
    `--baseURL=${server.endpoint}/`,
    `--accessId=${server.accessKeyId}`,
    `--accessKey=${server.secretAccessKey}`,
    `--region=${server.region}`,
  ];
}

/**
 * Runs a command to completion: { code, signal, stdout, stderr }; rejects if it does not exit in time.
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ cwd?: string, timeoutMs?: number, env?: NodeJS.ProcessEnv }} [options]
 */
export function runCommand(cmd, args, { cwd, timeoutMs = 60000, env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Runs the CLI to completion (for one-shot modes and failures).
 * @param {string[]} args
 * @param {{ cwd?: string, timeoutMs?: number, env?: NodeJS.ProcessEnv }} [options]
 */
export function runCli(args, options = {}) {
  return runCommand(process.execPath, [CLI, ...args], options);
}

export async function isMounted(mountpoint) {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((line) => line.split(' ')[4] === mountpoint);
}

/** The stats file's `%-28s value` lines as { name: value }. */
export function parseStatsFile(text) {
  // A name, then its value after the padding to column 28 (or one space, for names longer than that).
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => /^(\S+)\s+(.*)$/.exec(l)?.slice(1, 3) ?? [l.trim(), '']),
  );
}

/**
 * Starts the CLI with `args` as given (no -f added): the child, what it printed (stdout and
 * stderr together) so far, and its exit status once it ends.
 * @param {string[]} args
 * @param {{ env?: NodeJS.ProcessEnv, cwd?: string, command?: string[] }} [options]
 */
export function spawnCli(args, { env = process.env, cwd, command = [process.execPath, CLI] } = {}) {
  const [program, ...before] = command;
  const child = spawn(program, [...before, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} */
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => output };
}

/** Calls `then` once, the moment the mounted flag appears in a --test store; returns a stop for the watch. */
export function whenFlagAppears(store, then) {
  const watcher = watch(store, () => {
    if (existsSync(join(store, 's3backer-mounted'))) {
      watcher.close();
      then();
    }
  });
  return () => watcher.close();
}

/**
 * Starts `s3backer -f ARGS` and resolves once <mountpoint>/<filename> is there. `command` runs
 * another s3backer executable (an installed copy) instead of this checkout's CLI.
 * @param {string[]} args
 * @param {string} mountpoint
 * @param {{ filename?: string, timeoutMs?: number, env?: NodeJS.ProcessEnv, cwd?: string, command?: string[] }} [options]
 */
export async function startMount(
  args,
  mountpoint,
  { filename = 'file', timeoutMs = 60000, env = process.env, cwd, command = [process.execPath, CLI] } = {},
) {
  const { child, exited, stderr: output } = spawnCli(['-f', ...args], { env, cwd, command });
  let done = false;
  exited.then(() => (done = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (done) throw new Error(`s3backer exited before mounting: ${output()}`);
    if (
      await stat(join(mountpoint, filename)).then(
        () => true,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`s3backer did not mount within ${timeoutMs} ms: ${output()}`);
    }
    await sleep(50);
  }
  return {
    child,
    exited,
    stderr: output,
    /** Unmounts as a user would (umount) and resolves with the exit status. */
    async stop({ timeoutMs: stopTimeout = 120000 } = {}) {
      if (!done) await run('umount', [mountpoint]).catch(() => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeout);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Temporary directories for a test; `cleanup` unmounts whatever is still mounted there. */
export async function workdir(name) {
  const root = await mkdtemp(join(tmpdir(), `s3b-${name}-`));
  const dirs = { root, mnt: join(root, 'mnt'), data: join(root, 'data'), store: join(root, 'store') };
  await run('mkdir', ['-p', dirs.mnt, dirs.data, dirs.store]);
  dirs.cleanup = async () => {
    await run('umount', [dirs.data]).catch(() => {});
    await run('umount', [dirs.mnt]).catch(() => {});
    // Still mounted (busy, or its process gone after a failure): detach it so nothing hangs on it.
    if (await isMounted(dirs.data)) await run('umount', ['-l', dirs.data]).catch(() => {});
    if (await isMounted(dirs.mnt)) await run('umount', ['-l', dirs.mnt]).catch(() => {});
    // Never recurse into something still mounted.
    if (!(await isMounted(dirs.data)) && !(await isMounted(dirs.mnt))) {
      await rm(root, { recursive: true, force: true }).catch(() => {});
    }
  };
  return dirs;
}

/**
 * A --test mount in fresh work directories for the length of `body(w, m)`: `args` go before the
 * store and mountpoint; afterwards the mount must end cleanly (exit 0), and the directories go.
 */
export async function withTestMount(name, args, body) {
  const w = await workdir(name);
  try {
    const m = await startMount(['--test', ...args, w.store, w.mnt], w.mnt);
    try {
      await body(w, m);
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
  } finally {
    await w.cleanup();
  }
}

/** mkfs.ext4 on the backed file, as a newcomer would. */
export async function makeExt4(file) {
  await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=1,lazy_journal_init=1', file]);
}

export async function loopMount(file, dir, { readOnly = false } = {}) {
  await run('mount', ['-o', readOnly ? 'loop,ro' : 'loop', file, dir]);
}

/**
 * Mounts the disk again with `flags`, checks the ext4 on it with e2fsck (no changes), loop-mounts
 * it read-only and compares `name`'s checksum with `sum`; stops the mount and removes the workdir.
 */
export async function checkAfterRemount(w, flags, name, sum) {
  const file = join(w.mnt, 'file');
  const m = await startMount(flags, w.mnt);
  try {
    await run('e2fsck', ['-fn', file]);
    await loopMount(file, w.data, { readOnly: true });
    assert.equal(await sha256File(join(w.data, name)), sum, `${name} as written, after a remount`);
  } finally {
    await run('umount', [w.data]).catch(() => {});
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    await w.cleanup();
  }
}

export async function sha256File(file) {
  const { stdout } = await run('sha256sum', [file]);
  return stdout.split(' ')[0];
}

/** A port nobody listens on right now (the kernel's pick, released again). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * Runs the CLI on a pseudo-terminal (util-linux script), typing `typed` once its output shows
 * `prompt`; resolves with the exit status, everything shown, and whether the prompt came.
 */
export function answerOnTerminal(args, prompt, typed, { env = process.env, timeoutMs = 60000 } = {}) {
  const quote = (a) => `'${a.replace(/'/g, `'\\''`)}'`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', [process.execPath, CLI, ...args].map(quote).join(' '), '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env,
    });
    let output = '';
    let answered = false;
    const shown = (d) => {
      output += d;
      if (!answered && output.includes(prompt)) {
        answered = true;
        child.stdin.write(typed);
      }
    };
    child.stdout.on('data', shown);
    child.stderr.on('data', shown);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no exit; output: ${output}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output, answered });
    });
  });
}
