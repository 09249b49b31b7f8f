// Test helper: run upstream s3backer (C) against the s3rver started by ./s3server.mjs, as the
// interoperability reference: Debian's 1.5.4 (/usr/bin/s3backer), or upstream's newest build
// with `{ bin: NEWEST_UPSTREAM_BIN }`.
//
//   const up = startUpstream(server, 'test', mnt, ['--size=16M', '--blockSize=64K']);
//   await up.ready;                 // <mnt>/file exists and the FUSE mount is live
//   ... read/write <mnt>/file from child processes or async fs calls ...
//   await stopUpstream(up);         // umount, then wait for s3backer to exit
//
// Working command line (checked against s3rver 3.7.1 on loopback):
//   s3backer -f --baseURL=http://127.0.0.1:PORT/ --accessId=S3RVER --accessKey=S3RVER \
//            --authVersion=aws4 [--size=16M --blockSize=64K ...] BUCKET MNT
// Facts learned by experiment (see the report in the helpers' test for details):
//  - `--authVersion=aws2` gets 403 from s3rver (its V2 check rejects 1.5.4's signature); aws4
//    (the default) works. s3rver does not verify V4 signatures at all: only the access key id
//    must be `S3RVER`.
//  - The base URL must end with `/` and use path style: no `--vhost` and no `--region` (an
//    explicit --region, even us-east-1, turns on virtual-host style in 1.5.4: it then asks
//    http://BUCKET.127.0.0.1:PORT/, which does not resolve).
//  - `umount` returns at once; 1.5.4 then flushes dirty blocks and deletes the
//    `s3backer-mounted` object inside its FUSE destroy callback, so data is in S3 only when
//    the process has EXITED. SIGTERM does the same (clean unmount, flush, exit 0).
//  - On an empty bucket `--size` is required (auto-detection reads block 0's metadata).
//  - A mount that fails in FUSE (e.g. non-empty mountpoint) leaves `s3backer-mounted` set;
//    `resetMountedFlag()` clears it.

import { spawn, spawnSync } from 'node:child_process';
import { stat, readFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';

export const UPSTREAM_BIN = '/usr/bin/s3backer';
/**
 * Upstream's newest build (2.x, FUSE 3), named by S3BACKER_UPSTREAM_BIN (.ci/run builds it with
 * ../shared/tools/build-upstream.sh HEAD when that script is there). Undefined when not given:
 * tests that need it skip, saying so.
 */
export const NEWEST_UPSTREAM_BIN = process.env.S3BACKER_UPSTREAM_BIN || builtBySetup();

function builtBySetup() {
  try {
    const bin = readFileSync(new URL('../../.cache/upstream-bin', import.meta.url), 'utf8').trim();
    return bin !== '' && existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}
export const NEWEST_UPSTREAM_SKIP = NEWEST_UPSTREAM_BIN
  ? false
  : 'no newest upstream build: set S3BACKER_UPSTREAM_BIN to the binary that ../shared/tools/build-upstream.sh HEAD prints';
/** The upstream builds to test against: Debian's 1.5.4 always, the newest when given. */
export const UPSTREAM_BUILDS = [
  { name: "Debian's 1.5.4", bin: UPSTREAM_BIN },
  ...(NEWEST_UPSTREAM_BIN ? [{ name: 'upstream newest', bin: NEWEST_UPSTREAM_BIN }] : []),
];
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 30_000;
const POLL_MS = 50;

/** The connection flags 1.5.4 needs for the s3rver `server`. */
export function upstreamConnectionArgs(server) {
  return [
    `--baseURL=${server.endpoint}/`,
    `--accessId=${server.accessKeyId}`,
    `--accessKey=${server.secretAccessKey}`,
    '--authVersion=aws4',
    // NOT --region: any explicit --region (even us-east-1) makes 1.5.4 switch to virtual-host
    // style (http://BUCKET.127.0.0.1:PORT/ -> "Couldn't resolve host name", retried ~30 s),
    // and 1.5.4 has no --no-vhost. The default region us-east-1 is what s3rver expects.
  ];
}

/** Full argv (without the binary) for a foreground mount. Later flags win in 1.5.4. */
export function upstreamMountArgs(server, bucket, mountpoint, extraArgs = []) {
  return ['-f', ...upstreamConnectionArgs(server), ...extraArgs, bucket, resolvePath(mountpoint)];
}

const active = new Set();

/**
 * Mount `bucket` of `server` at `mountpoint` with upstream s3backer in the foreground.
 * Returns { child, mountpoint, args, ready, exited, output(), stop() }.
 *  - ready: resolves when `<mountpoint>/file` (or opts.filename) exists on a live
 *    fuse.s3backer mount; rejects (with s3backer's output) if it exits first or on timeout.
 *  - exited: resolves with { code, signal } when the process exits.
 * extraArgs go between the connection flags and the bucket, so they can override them.
 */
export function startUpstream(server, bucket, mountpoint, extraArgs = [], opts = {}) {
  const bin = opts.bin ?? UPSTREAM_BIN;
  const { readyTimeoutMs = READY_TIMEOUT_MS, filename = filenameFrom(extraArgs) } = opts;
  const mnt = resolvePath(mountpoint);
  const args = upstreamMountArgs(server, bucket, mnt, extraArgs);
  const child = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: process.env.HOME || '/root' },
  });
  let out = '';
  const collect = (d) => {
    if (out.length < 256 * 1024) out += d;
  };
  child.stdout.setEncoding('utf8').on('data', collect);
  child.stderr.setEncoding('utf8').on('data', collect);

  /** @type {{ code: number | null, signal: NodeJS.Signals | null, error?: Error } | null} */
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      collect(`spawn error: ${err.message}\n`);
      exitInfo = { code: null, signal: null, error: err };
      resolve(exitInfo);
    });
  });

  const handle = {
    child,
    mountpoint: mnt,
    bucket,
    args,
    command: [bin, ...args].join(' '),
    exited,
    output: () => out,
    get exitInfo() {
      return exitInfo;
    },
    stop: (o) => stopUpstream(handle, o),
  };
  active.add(handle);
  exited.then(() => active.delete(handle));
  if (child.pid) startWatchdog(child.pid, mnt);

  handle.ready = (async () => {
    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      if (exitInfo) {
        throw new Error(
          `s3backer exited before the mount was ready (code ${exitInfo.code}, signal ${exitInfo.signal})\n` + `${handle.command}\n${out}`,
        );
      }
      if ((await isFuseMounted(mnt)) && (await exists(`${mnt}/${filename}`))) return handle;
      await sleep(POLL_MS);
    }
    throw new Error(`s3backer mount not ready within ${readyTimeoutMs} ms\n${handle.command}\n${out}`);
  })();
  // Avoid unhandled-rejection noise when a caller only awaits stop().
  handle.ready.catch(() => {});
  return handle;
}

/**
 * Unmount (umount, retried while busy, lazy as a last resort) and wait until the
 * s3backer process has exited: only then are its dirty blocks in S3 and the mounted flag
 * cleared. Falls back to SIGTERM, then SIGKILL. Resolves with { code, signal }.
 */
export async function stopUpstream(handle, { timeoutMs = STOP_TIMEOUT_MS } = {}) {
  const { child, mountpoint } = handle;
  const deadline = Date.now() + timeoutMs;
  if (!handle.exitInfo) {
    // umount fails with EBUSY while a reader still has the file open: retry a little.
    for (let i = 0; i < 20 && !handle.exitInfo; i++) {
      if (!(await isFuseMounted(mountpoint))) {
        // Not (yet) mounted: still starting up, or the mount failed. SIGTERM is a clean stop
        // for 1.5.4 in every phase (after mounting it unmounts, flushes and exits 0).
        child.kill('SIGTERM');
        break;
      }
      const r = await run('umount', [mountpoint], 10_000);
      if (r.code === 0) break;
      await sleep(100);
    }
    // Wait for the flush + exit.
    if (!(await within(handle.exited, Math.max(0, deadline - Date.now())))) {
      child.kill('SIGTERM');
      if (!(await within(handle.exited, 5_000))) {
        child.kill('SIGKILL');
        await within(handle.exited, 5_000);
      }
    }
  }
  // Whatever happened, leave no (stale) mount behind.
  if (await isFuseMounted(mountpoint)) {
    const r = await run('umount', [mountpoint], 10_000);
    if (r.code !== 0) await run('umount', ['-l', mountpoint], 10_000);
  }
  return handle.exitInfo;
}

/** Best-effort synchronous cleanup of every mount this process started (for `finally`). */
export function cleanupAllUpstream() {
  for (const h of active) {
    spawnSync('umount', ['-l', h.mountpoint], { stdio: 'ignore', timeout: 10_000 });
    try {
      h.child.kill('SIGTERM');
    } catch {
      // already gone
    }
  }
}
process.once('exit', cleanupAllUpstream);

/**
 * Run a non-mount s3backer command to completion (e.g. ['--reset-mounted-flag'],
 * ['--erase', '--force'], ['--version']). Returns { code, signal, output }.
 */
export async function runUpstream(server, bucket, extraArgs = [], { timeoutMs = 60_000, bin = UPSTREAM_BIN } = {}) {
  const args = [...upstreamConnectionArgs(server), ...extraArgs, bucket];
  return run(bin, args, timeoutMs);
}

/** Delete the `s3backer-mounted` flag with upstream's own --reset-mounted-flag. */
export async function resetMountedFlag(server, bucket, extraArgs = []) {
  const r = await runUpstream(server, bucket, ['--reset-mounted-flag', ...extraArgs]);
  if (r.code !== 0) throw new Error(`s3backer --reset-mounted-flag failed (${r.code})\n${r.output}`);
  return r;
}

/** Is `mountpoint` currently a FUSE mount (per /proc/self/mountinfo)? */
export async function isFuseMounted(mountpoint) {
  const mnt = resolvePath(mountpoint);
  let text;
  try {
    text = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  for (const line of text.split('\n')) {
    // id parent maj:min root mountpoint options [optional...] - fstype source superopts
    const f = line.split(' ');
    if (f.length < 5) continue;
    const point = f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (point !== mnt) continue;
    const dash = f.indexOf('-');
    if (dash > 0 && /^fuse/.test(f[dash + 1] || '')) return true;
  }
  return false;
}

function filenameFrom(extraArgs) {
  let name = 'file';
  for (const a of extraArgs) {
    const m = /^--filename=(.*)$/.exec(a);
    if (m) name = m[1];
  }
  return name;
}

async function exists(p) {
  try {
    await stat(p); // async: s3backer is another process, so this cannot deadlock us
    return true;
  } catch {
    return false;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolve true once `promise` settles, false after `ms` (timer cleared either way).
function within(promise, ms) {
  let timer;
  return Promise.race([
    promise.then(() => true),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Run a command with a timeout; never rejects.
function run(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    let output = '';
    let done = false;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, output });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ code: null, signal: 'SIGKILL', timedOut: true });
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (output += d));
    child.once('error', (err) => finish({ code: null, signal: null, error: err }));
    child.once('close', (code, signal) => finish({ code, signal }));
  });
}

// A detached shell that unmounts (lazily) and kills s3backer if this Node process dies
// without stopping it (crash, SIGKILL, test-runner timeout). It exits by itself once
// s3backer is gone.
const WATCHDOG = `
alive() { s=$(sed -n 's/^State:[[:space:]]*\\(.\\).*/\\1/p' /proc/$1/status 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }
while alive "$1"; do
  alive "$2" || exit 0
  sleep 0.5
done
alive "$2" || exit 0
umount -l "$3" 2>/dev/null
kill -TERM "$2" 2>/dev/null
sleep 5
alive "$2" && kill -KILL "$2" 2>/dev/null
exit 0
`;

function startWatchdog(childPid, mountpoint) {
  try {
    const w = spawn('/bin/sh', ['-c', WATCHDOG, 'upstream-watchdog', String(process.pid), String(childPid), mountpoint], {
      stdio: 'ignore',
      detached: true,
    });
    w.on('error', () => {});
    w.unref();
  } catch {
    // best effort
  }
}
